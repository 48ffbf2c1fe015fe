"""``probekit compare``: paired before/after comparison of encoders in one results table.

    probekit compare results/ --before whisper-tiny.en --after erm-lora \\
        --seen erm-lora=runs/erm/merged --out compare/

Both encoders must have been probed on the same test speakers (same corpus, same grid
seeds): each seed is one split, and the change is paired by split and speaker, with the
probes' training draw counted (two-way split x speaker cluster-robust t; delta method for
the gaps). One seed only gives no p-value or interval (the rows say why). ``--seen LABEL=FOLDER`` reads the speakers an adapted encoder was trained and
validated on (``seen_ids.json`` beside its merged model or adapters): test speakers among them
are refused, by name, unless ``--allow-seen``. See docs/concepts.md, "Before/after comparisons".
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd(args: argparse.Namespace) -> int:
    from probekit.bias.compare import SeenIds, compare_encoders
    from probekit.cliutil import comma_list
    from probekit.errors import ProbekitError
    from probekit.probes.results import ResultsTable
    from probekit.report.compare import degenerate_sentences
    from probekit.report.verdicts import comparison_verdicts

    inputs = [args.results] + [i.partition("=")[2] or None for i in args.seen]
    if args.out:  # a bad --out fails before the comparison
        from probekit.outdir import check_output_path

        check_output_path(args.out, option="--out", inputs=inputs)
    seen = {}
    for item in args.seen:
        label, _, folder = item.partition("=")
        ids = SeenIds.load(folder) if folder else None
        if ids is None:
            raise ProbekitError(f"--seen {item!r}: no {folder}/seen_ids.json (use LABEL=FOLDER)")
        seen[label] = ids
    df = ResultsTable(args.results).load()
    if args.task:
        tasks = comma_list(args.task)
        unknown = sorted(set(tasks) - set(df["task"].astype(str)))
        if unknown:
            raise ProbekitError(f"--task {', '.join(unknown)}: not in {args.results}; its tasks: "
                                f"{', '.join(sorted(set(df['task'].astype(str)))) or 'none'}")
        df = df[df["task"].astype(str).isin(tasks)]
    after = comma_list(args.after) if args.after else None
    cmp = compare_encoders(df, args.before, after, train_set=args.train_set, seen=seen,
                           allow_seen=args.allow_seen, alpha=args.alpha)
    for g in cmp.guard:
        print(f"guard: {g}")
    for v in comparison_verdicts(cmp):
        print(f"- {v}")
    for d in degenerate_sentences(cmp.table):
        print(f"degenerate: {d}")
    if args.out:
        out = cmp.save(args.out, inputs=inputs, command="compare",
                       fingerprint={"results": str(Path(args.results).resolve()),
                                    "before": args.before, "after": after})
        print(f"tables: {out / 'comparison.csv'}, {out / 'n_per_cell.csv'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="paired before/after comparison of encoders on the same "
                       "test speakers", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="probe results folder (probekit probe / study work/results)")
    p.add_argument("--before", required=True, help="reference encoder label (e.g. the base)")
    p.add_argument("--after", default=None, help="comma list of compared encoders (default: "
                   "every other encoder)")
    p.add_argument("--seen", action="append", default=[], metavar="LABEL=FOLDER",
                   help="an adapted encoder's saved training ids (repeatable)")
    p.add_argument("--allow-seen", action="store_true",
                   help="compare even on test speakers an adapted encoder was trained on")
    p.add_argument("--train-set", default="all", help="probe training set (default all)")
    p.add_argument("--task", help="comma list of tasks to compare (default: every task; a task "
                                  "whose seeds differ between the encoders no longer blocks the others)")
    from probekit.cliutil import level
    p.add_argument("--alpha", type=level, default=0.05, help="1 - interval level and test level")
    p.add_argument("--out", default=None, help="write comparison.csv, n_per_cell.csv, "
                   "comparison.json and figures/ here (a folder probekit owns: one it did not write is "
                   "refused; its own earlier comparison is replaced)")
    p.set_defaults(func=_cmd)
