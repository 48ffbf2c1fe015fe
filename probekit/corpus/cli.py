"""``probekit corpus ...``: build, summarise and validate corpora."""

from __future__ import annotations

import argparse

from probekit.corpus.model import Corpus


def _summary(args: argparse.Namespace) -> int:
    corpus = Corpus.load(args.manifest)
    attrs = [args.by] if args.by else (corpus.attributes or [None])
    for attr in attrs:
        df = corpus.summary(attr)
        print(df.to_string(float_format=lambda x: f"{x:.3f}"))
        print()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build, summarise and validate corpora")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    s = csub.add_parser("summary", help="per-group speakers, utterances, hours, phones",
                        description="Print a per-group summary of a corpus manifest.",
                        epilog="example: probekit corpus summary corpus/ --by accent")
    s.add_argument("manifest", help="manifest.jsonl or the folder holding it")
    s.add_argument("--by", help="group attribute (default: every attribute in the corpus)")
    s.set_defaults(func=_summary)
