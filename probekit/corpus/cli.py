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


def _synth(args: argparse.Namespace) -> int:
    from probekit.corpus.synthetic import build_synthetic_corpus, resolve_config

    overrides = {} if args.seed is None else {"seed": args.seed}
    config = resolve_config(args.preset, **overrides)
    corpus = build_synthetic_corpus(config, args.out, progress=not args.quiet)
    print(f"synthetic corpus {config.name!r} ({len(corpus)} utterances) in {corpus.root}")
    print(corpus.summary("accent").to_string(float_format=lambda x: f"{x:.3f}"))
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
    y = csub.add_parser("synth", help="build the synthetic accented corpus (espeak-ng)",
                        description="Synthesise accented English with espeak-ng voices, with "
                                    "word and phone timings. Reuses a finished corpus of the "
                                    "same config; refuses any other non-empty folder.",
                        epilog="example: probekit corpus synth --preset small --out corpus/")
    y.add_argument("--preset", choices=["small", "default"], default="default",
                   help="small: 3 groups x 2 speakers (tests); default: 10 groups x 6 speakers")
    y.add_argument("--out", help="corpus folder (default: the probekit cache)")
    y.add_argument("--seed", type=int, help="seed of sentences, speakers and noise")
    y.set_defaults(func=_synth)
