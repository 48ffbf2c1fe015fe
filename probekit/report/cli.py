"""``probekit report``: the HTML/markdown report of a bias analysis folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from probekit.errors import ProbekitError


def _report(args: argparse.Namespace) -> int:
    from probekit.report import build_report

    analysis = Path(args.analysis)
    if not (analysis / "findings.md").exists() and not list(analysis.glob("*.csv")):
        raise ProbekitError(f"{analysis} is not a bias analysis folder (run probekit analyze first)")
    meta_path = Path(args.meta) if args.meta else analysis.parent / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if args.synthetic:
        meta["synthetic"] = True
    if args.random_init:
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
    p.add_argument("--synthetic", action="store_true", help="show the synthetic-data banner")
    p.add_argument("--random-init", action="append", metavar="ENCODER",
                   help="show the random-model banner for ENCODER (repeatable)")
    p.add_argument("--title", help="report title (default: the config's, or 'probekit bias report')")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a report of another analysis (or not written by probekit) in --out")
    p.set_defaults(func=_report)
