"""``probekit corpus ...``: build, summarise and validate corpora."""

from __future__ import annotations

import argparse

from probekit.corpus.model import INTERSECTION_SEP, MIN_INTERSECTION_SPEAKERS


def _options(pairs: list[str] | None) -> dict:
    """``["preset=edacc", 'groups={"accent": "l1"}']`` -> reader options (values JSON if they
    parse, else strings)."""
    import json

    from probekit.errors import CorpusError

    out = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CorpusError(f"--option needs KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _read(args: argparse.Namespace):
    from probekit.corpus.readers import read_corpus

    return read_corpus(getattr(args, "manifest", None) or args.path, kind=args.kind,
                       **_options(args.option))


def _add_reader_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", help="reader name (default: recognise the layout)")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="reader option, repeatable; VALUE is JSON when it parses, e.g. "
                        "-o preset=edacc, -o split=test, -o 'groups={\"accent\": \"accents\"}', "
                        "-o phone_labels=perceived")


def _default_size() -> str:
    from probekit.corpus.synthetic import default_corpus_size

    return default_corpus_size()


def detect(path) -> str:
    from probekit.corpus.readers import detect_kind

    return detect_kind(path)


def _claim_corpus_out(out, args: argparse.Namespace, command: str):
    """Claim a folder for a new manifest: never the corpus's own folder (or one holding it),
    never a folder probekit did not write (:mod:`probekit.outdir`)."""
    from pathlib import Path

    from probekit.corpus.model import MANIFEST_NAME
    from probekit.outdir import claim_output

    src = Path(args.path)
    return claim_output(out, "corpus", fresh=True, command=command, contents=[MANIFEST_NAME],
                        fingerprint={"corpus": str(src.resolve())},
                        inputs=(src, src.parent if src.is_file() else None))


def _summary(args: argparse.Namespace) -> int:
    corpus = _read(args)
    print(f"{corpus.name}: {len(corpus)} utterances, {len(corpus.speakers)} speakers "
          f"(read as {args.kind or detect(args.manifest)})")
    if corpus.speaker_rule:
        print(f"speakers from: {corpus.speaker_rule} (change with -o speaker_pattern=REGEX)")
    if args.by and INTERSECTION_SEP in args.by:
        corpus = corpus.with_intersection(args.by, min_speakers=args.min_speakers)
    attrs = [args.by] if args.by else (corpus.attributes or [None])
    for attr in attrs:
        df = corpus.summary(attr)
        print(df.to_string(float_format=lambda x: f"{x:.3f}"))
        print()
    return 0


def _validate(args: argparse.Namespace) -> int:
    # Imported here so `probekit --help` stays fast.
    from probekit.corpus.validate import validate_corpus

    corpus = _read(args)
    for attr in args.attribute or []:
        if INTERSECTION_SEP in attr:
            corpus = corpus.with_intersection(attr, min_speakers=max(args.min_speakers, MIN_INTERSECTION_SPEAKERS))
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
        out = _claim_corpus_out(args.write_clean, args, "corpus validate --write-clean")
        print(f"clean corpus written to {clean.save(out)}")
    return 0 if report.ok else 1


def _align(args: argparse.Namespace) -> int:
    from probekit.corpus.align import align_corpus

    out = _claim_corpus_out(args.out, args, "corpus align")  # before hours of aligning
    corpus = _read(args)
    aligned, report = align_corpus(corpus, oov=args.oov, overwrite=not args.keep,
                                   progress=not args.quiet)
    path = aligned.save(out)
    print(f"aligned {len(report.aligned)} of {len(corpus)} utterances; "
          f"{len(report.failed)} failed, {len(report.oov)} with out-of-dictionary words")
    for uid, msg in list(report.failed.items())[:20]:
        print(f"  {uid}: {msg}")
    print(f"manifest written to {path}")
    return 0 if not report.failed else 1


def _synth(args: argparse.Namespace) -> int:
    from probekit.corpus.synthetic import build_synthetic_corpus, resolve_config

    if args.out:  # a file, a link or a read-only folder fails before the synthesis
        from probekit.outdir import check_output_path

        check_output_path(args.out, option="--out")
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
    s.add_argument("manifest", metavar="PATH",
                   help="corpus folder or manifest, in any layout the readers recognise "
                        "(JSONL, CSV, lhotse, Hugging Face datasets, MFA output, TIMIT, VCTK, "
                        "L2-ARCTIC)")
    _add_reader_options(s)
    s.add_argument("--by", help="group attribute, or an intersection such as accent*gender "
                                "(default: every attribute in the corpus)")
    s.add_argument("--min-speakers", type=int, default=MIN_INTERSECTION_SPEAKERS,
                   help="smallest speakers per intersectional group (--by a*b)")
    s.set_defaults(func=_summary)
    y = csub.add_parser("synth", help="build the synthetic accented corpus (espeak-ng)",
                        description="Synthesise accented English with espeak-ng voices, with "
                                    "word and phone timings. Reuses a finished corpus of the "
                                    "same config; refuses any other non-empty folder.",
                        epilog="example: probekit corpus synth --preset small --out corpus/")
    y.add_argument("--preset", choices=["small", "default"], default="default",
                   help="small: 3 accents x 2 speakers x 3 sentences (tests); default: "
                        + _default_size())
    y.add_argument("--out", help="corpus folder (default: the probekit cache)")
    from probekit.cliutil import seed
    y.add_argument("--seed", type=seed, help="seed of sentences, speakers and noise "
                                             "(0 to 2**32 - 1)")
    y.set_defaults(func=_synth)
    v = csub.add_parser("validate", help="check audio, text, alignments and group labels",
                        description="Check a corpus (any reader's layout) and print its problems "
                                    "grouped by rule; exit status 1 when there are errors.",
                        epilog="example: probekit corpus validate ~/L2-ARCTIC --kind l2arctic")
    v.add_argument("path", help="corpus folder or manifest (JSONL, CSV, lhotse)")
    _add_reader_options(v)
    v.add_argument("--attribute", action="append",
                   help="group attribute to check (repeatable; default: all)")
    v.add_argument("--min-speakers", type=int, default=2,
                   help="smallest speakers per group (intersections such as accent*gender "
                        f"given with --attribute need at least {MIN_INTERSECTION_SPEAKERS} by "
                        "default; pass a larger value to be stricter)")
    v.add_argument("--no-audio", action="store_true", help="do not decode the audio files")
    v.add_argument("--max-per-rule", type=int, default=20, help="problems printed per rule")
    v.add_argument("--write-clean", metavar="DIR",
                   help="save the corpus without bad utterances as DIR/manifest.jsonl (a new "
                        "folder probekit owns; never the corpus's own folder)")
    v.set_defaults(func=_validate)
    a = csub.add_parser("align", help="force-align transcripts to audio (pocketsphinx)",
                        description="Add word and phone alignments (ARPAbet without stress, "
                                    "10 ms frames) with pocketsphinx's US-English model and "
                                    "write a JSONL manifest. Needs pip install 'probekit[align]'."
                                    " Exit status 1 when some utterances could not be aligned "
                                    "(they keep their old alignments and are listed).",
                        epilog="example: probekit corpus align my_corpus/ --out aligned/")
    a.add_argument("path", help="corpus folder or manifest, in any recognised layout")
    a.add_argument("--out", required=True, help="folder for the aligned manifest.jsonl (a new "
                   "folder probekit owns; never the corpus's own folder)")
    _add_reader_options(a)
    a.add_argument("--oov", choices=["warn", "error", "skip"], default="warn",
                   help="words not in the dictionary: guess a pronunciation (warn), stop, or "
                        "leave the utterance unaligned")
    a.add_argument("--keep", action="store_true",
                   help="keep existing alignments; align only utterances without phones")
    a.set_defaults(func=_align)
