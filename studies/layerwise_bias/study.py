"""Layerwise bias study (seed 002): a thin wrapper over ``probekit study run``.

    python -m studies.layerwise_bias.study [--out DIR] [--config FILE] [--overwrite]

Prints the per-task layer summary (lowest-error layer, largest/smallest gap, Spearman of
error vs gap across layers with its speaker-bootstrap CI) and where the report is.
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
    ap.add_argument("--out", default="probekit-study-layerwise_bias")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    run = run_study(load_config(args.config), args.out, overwrite=args.overwrite)
    s = pd.read_csv(run.analysis / "layer_summary.csv")
    s = s[s["bias_measure"] == "difference"]
    cols = ["encoder", "task", "metric", "min_error_layer", "max_bias_layer", "min_bias_layer",
            "spearman", "ci_low", "ci_high"]
    print(s[cols].to_string(index=False))
    print(f"report: {run.report_html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
