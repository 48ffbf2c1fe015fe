"""``probekit report``: the HTML/markdown report of a bias analysis folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from probekit.errors import ProbekitError


def _analysis_encoders(an) -> set[str]:
    """The encoders of an analysis's tables (:meth:`probekit.bias.analysis.Analysis.load`)."""
    return {str(e) for t in an.tables.values() if "encoder" in t
            for e in t["encoder"].dropna()}


def _report(args: argparse.Namespace) -> int:
    from probekit.bias.analysis import Analysis
    from probekit.outdir import add_contents, claim_output, finish_output, read_stamp
    from probekit.report import build_report
    from probekit.report.build import REPORT_STAMP

    from probekit.outdir import check_output_path

    analysis = Path(args.analysis)
    if args.out:  # a file, a link, a read-only folder or the analysis itself: refused first
        check_output_path(args.out, inputs=(analysis,), option="--out")
    if analysis.is_dir() and list(analysis.glob("part-*.csv")):
        raise ProbekitError(f"{analysis} is a results table, not an analysis folder: run "
                            "probekit analyze RESULTS --out DIR first")
    an = Analysis.load(analysis)  # a finished analysis whose tables are all there, or an error
    meta_path = Path(args.meta) if args.meta else analysis.parent / "run.json"
    from probekit.provenance import read_meta
    meta = read_meta(meta_path) if meta_path.is_file() else {}
    if args.synthetic_source:
        meta["synthetic"] = args.synthetic_source
    elif args.synthetic and not meta.get("synthetic"):
        meta["synthetic"] = True
    if args.random_init:
        encoders = _analysis_encoders(an)
        unknown = sorted(set(args.random_init) - encoders)
        if unknown:
            raise ProbekitError(f"--random-init {', '.join(unknown)}: not an encoder of this "
                                f"analysis; its encoders: {', '.join(sorted(encoders)) or 'none'}")
        meta["random_init"] = sorted(set(meta.get("random_init", [])) | set(args.random_init))
    if args.title:
        meta.setdefault("config", {})["title"] = args.title
    source = str(analysis.resolve())
    if args.out:
        out = Path(args.out)
    else:  # a folder of the analysis, so a new analysis there clears it too
        out = analysis / "report"
        add_contents(analysis, "report")
    old = read_stamp(out) if out.is_dir() else None
    if old and old["kind"] == "report" and old.get("fingerprint") != source and not args.overwrite:
        raise ProbekitError(f"{out} is a report of {old.get('fingerprint')}, not of "
                            f"{analysis}; pass --overwrite to replace it, or choose another --out")
    claim_output(out, "report", fresh=True, overwrite=args.overwrite, command="report",
                 fingerprint=source, inputs=(analysis,),
                 contents=["report.html", "report.md", "report_figures", REPORT_STAMP])
    html, md = build_report(analysis, out, meta)
    finish_output(out)  # stamped before writing (claim_output), marked finished last
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
               "  probekit report probekit-demo/analysis   # into probekit-demo/analysis/report/")
    p.add_argument("analysis", metavar="ANALYSIS_DIR", help="output folder of probekit analyze")
    p.add_argument("--out", help="report folder, owned by probekit: a folder it did not write is "
                                 "refused (default: ANALYSIS_DIR/report)")
    from probekit.cliutil import existing_file
    p.add_argument("--meta", type=existing_file,
                   help="run.json with config/fingerprints/versions (default: run.json beside "
                        "the analysis folder, when there is one)")
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
                   help="replace a report of another analysis, or another kind of probekit "
                        "output, in --out (never a folder probekit did not write)")
    p.set_defaults(func=_report)
