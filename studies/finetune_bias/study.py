"""finetune_bias: a thin wrapper over ``probekit study run studies/finetune_bias/config.toml``.

    python -m studies.finetune_bias.study [--out DIR] [--overwrite]

All logic is in the library: :func:`training.finetune.finetune` (splits, training, seen ids),
the ``[training]`` section of :class:`probekit.study.StudyConfig`, the study runner's train
and compare stages, :func:`probekit.bias.compare.compare_encoders` and the report's
before/after section (:mod:`probekit.report.compare`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

CONFIG = Path(__file__).with_name("config.toml")


def main(argv=None) -> int:
    from probekit.study.config import load_config
    from probekit.study.run import run_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="probekit-study-finetune_bias")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    run = run_study(load_config(CONFIG), args.out, overwrite=args.overwrite)
    print(f"report: {run.report_html}\n        {run.report_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
