"""``probekit report``: the HTML/markdown report of a bias analysis folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from probekit.errors import ProbekitError


def _analysis_encoders(analysis: Path) -> set[str]:
    import pandas as pd

    names: set[str] = set()
    for f in analysis.glob("*.csv"):
        try:
            names |= set(pd.read_csv(f, usecols=["encoder"], dtype=str)["encoder"].dropna())
        except (ValueError, pd.errors.EmptyDataError):
            continue
    return names


def _report(args: argparse.Namespace) -> int:
    from probekit.report import build_report

    from probekit.outdir import read_stamp

    analysis = Path(args.analysis)
    stamp = read_stamp(analysis) if analysis.is_dir() else None
    if not (analysis / "findings.md").is_file() or (stamp and stamp.get("kind") != "analysis"):
        what = ("a results table" if list(analysis.glob("part-*.csv")) else
                f"a probekit {stamp['kind']} folder" if stamp else "not a bias analysis")
        raise ProbekitError(f"{analysis} is {what}, not an analysis folder (no findings.md from "
                            "probekit analyze): run probekit analyze RESULTS --out DIR first")
    meta_path = Path(args.meta) if args.meta else analysis.parent / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if args.synthetic_source:
        meta["synthetic"] = args.synthetic_source
    elif args.synthetic and not meta.get("synthetic"):
        meta["synthetic"] = True
    if args.random_init:
        encoders = _analysis_encoders(analysis)
        unknown = sorted(set(args.random_init) - encoders)
        if unknown:
            raise ProbekitError(f"--random-init {', '.join(unknown)}: not an encoder of this "
                                f"analysis; its encoders: {', '.join(sorted(encoders)) or 'none'}")
        meta["random_init"] = sorted(set(meta.get("random_init", [])) | set(args.random_init))
    if args.title:
        meta.setdefault("config", {})["title"] = args.title
    from probekit.outdir import claim_output
    from probekit.report.build import report_source

    out = Path(args.out) if args.out else analysis.parent
    if (out / "report.html").exists() and not args.overwrite:
        src = report_source(out)
        if src != str(analysis.resolve()):
            what = f"a report of {src}" if src else "a report probekit did not write"
            raise ProbekitError(f"{out / 'report.html'} is {what}, not of {analysis}; pass "
                                "--overwrite to replace it, or choose another --out")
    elif args.out and (not out.exists() or not any(out.iterdir())):
        claim_output(out, "report")
    html, md = build_report(analysis, out, meta)
    print(f"report: {html}\n        {md}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="HTML + markdown report of a bias analysis folder",
        description="Summary in plain words, figures (embedded in the HTML), group-by-layer "
                    "tables, configuration and fingerprints. Reads run.json beside the analysis "
                    "folder when present (probekit study/demo write it).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  probekit analyze results/ --store store/ --out analysis/\n"
               "  probekit report analysis/ --out report/ --synthetic\n"
               "  probekit report probekit-demo/analysis      # rebuild the demo's report")
    p.add_argument("analysis", metavar="ANALYSIS_DIR", help="output folder of probekit analyze")
    p.add_argument("--out", help="report folder (default: the analysis folder's parent)")
    p.add_argument("--meta", help="run.json with config/fingerprints/versions (default: beside "
                                  "the analysis folder)")
    p.add_argument("--synthetic", action="store_true",
                   help="show the synthetic-data banner (name the corpus with --synthetic-source)")
    p.add_argument("--synthetic-source", metavar="DESCRIPTION",
                   help="what the synthetic corpus is, for the banner (implies --synthetic), "
                        "e.g. --synthetic-source 'Piper TTS voices reading English'")
    p.add_argument("--random-init", action="append", metavar="ENCODER",
                   help="show the random-model banner for ENCODER (repeatable; must be an "
                        "encoder of the analysis)")
    p.add_argument("--title", help="report title (default: the config's, or 'probekit bias report')")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report of another analysis (or not written by probekit) in --out")
    p.set_defaults(func=_report)
