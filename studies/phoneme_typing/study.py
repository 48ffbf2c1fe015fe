"""Phoneme typing study (seed 001): a thin wrapper over ``probekit study run``.

    python -m studies.phoneme_typing.study [--out DIR] [--config FILE] [--overwrite]

Prints, per layer, the groups typed systematic / random / both, the pooled own-vs-broad
test, and the harder-groups-generalise-better correlation; then where the report is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from probekit.study import load_config, run_study

HERE = Path(__file__).parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=HERE / "config.toml")
    ap.add_argument("--out", default="probekit-study-phoneme_typing")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    run = run_study(load_config(args.config), args.out, overwrite=args.overwrite)
    a = run.analysis
    ty = pd.read_csv(a / "typing.csv")
    print(ty.pivot_table(index="group", columns="layer", values="type", aggfunc="first").to_string())
    ob = pd.read_csv(a / "own_vs_broad.csv")
    print(ob[ob["group"] == "(pooled)"][["layer", "reference", "difference", "ci_low", "ci_high",
                                         "p_less", "n_splits"]].to_string(index=False))
    print(f"report: {run.report_html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
