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


def _validate(args: argparse.Namespace) -> int:
    # Imported here so `probekit --help` stays fast.
    from probekit.corpus.readers import read_corpus
    from probekit.corpus.validate import validate_corpus

    corpus = read_corpus(args.path, kind=args.kind)
    report = validate_corpus(corpus, min_speakers_per_group=args.min_speakers,
                             attributes=args.attribute, check_audio=not args.no_audio)
    for rule, problems in report.by_rule().items():
        print(f"{rule} ({problems[0].severity}, {len(problems)}):")
        for p in problems[: args.max_per_rule]:
            print(f"  {p.utterance} [{p.field}]: {p.message}")
        if len(problems) > args.max_per_rule:
            print(f"  ... and {len(problems) - args.max_per_rule} more")
    print(f"{len(corpus)} utterances, {len(report.errors)} errors, {len(report.warnings)} "
          f"warnings; {len(report.dropped)} utterances would be dropped")
    if args.write_clean:
        clean, _ = report.clean_corpus()
        print(f"clean corpus written to {clean.save(args.write_clean)}")
    return 0 if report.ok else 1


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
    v = csub.add_parser("validate", help="check audio, text, alignments and group labels",
                        description="Check a corpus (any reader's layout) and print its problems "
                                    "grouped by rule; exit status 1 when there are errors.",
                        epilog="example: probekit corpus validate ~/L2-ARCTIC --kind l2arctic")
    v.add_argument("path", help="corpus folder or manifest (JSONL, CSV, lhotse)")
    v.add_argument("--kind", help="reader name (default: recognise the layout)")
    v.add_argument("--attribute", action="append",
                   help="group attribute to check (repeatable; default: all)")
    v.add_argument("--min-speakers", type=int, default=2, help="smallest speakers per group")
    v.add_argument("--no-audio", action="store_true", help="do not decode the audio files")
    v.add_argument("--max-per-rule", type=int, default=20, help="problems printed per rule")
    v.add_argument("--write-clean", metavar="DIR", help="save the corpus without bad utterances")
    v.set_defaults(func=_validate)
