"""``probekit probe``: run the probe grid on an embedding store; ``probekit results dedupe``:
repair a results table that holds a cell more than once."""

from __future__ import annotations

import argparse

from probekit.cliutil import comma_list as _csv


def _layer_list(value: str) -> list[str]:
    """``--layers`` (``argparse`` type): a non-empty comma list of layer indices or names
    (whether each exists is checked against the store, naming the stored layers)."""
    items = _csv(value)
    if not items:
        raise argparse.ArgumentTypeError(f"{value!r} names no layer: give a comma list of layer "
                                         "indices or names, e.g. 0,2 or conv,block2")
    return items


def _seed_list(value: str) -> list[int]:
    """``--seeds`` (``argparse`` type): a non-empty comma list of integers >= 0."""
    items = _csv(value)
    bad = [x for x in items if not x.isdigit()]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{(bad or [value])[0]!r} is not a seed: give a comma "
                                         "list of integers >= 0, e.g. 0,1,2")
    return [int(x) for x in items]


def _probe(args: argparse.Namespace) -> int:
    from probekit.probes.grid import run_grid
    from probekit.probes.results import ResultsTable
    from probekit.probes.tasks import get_task
    from probekit.store import EmbeddingStore

    from probekit.outdir import claim_output
    from probekit.probes.results import SUPERSEDED_DIR

    tasks = [get_task(t) for t in _csv(args.task)]  # unknown names refused before anything runs
    store = EmbeddingStore.open(args.store)
    # names or encoder indices that exist in the store (StoreError with the valid ones), checked
    # before anything is written
    layers = [store.layer_name(x) for x in args.layers] if args.layers else None
    # appended to, never cleared: a folder probekit did not stamp as results is refused
    claim_output(args.out, "results", command="probe", inputs=(args.store, args.corpus),
                 fingerprint={"store": getattr(store, "key", None)},
                 contents=["part-*.csv", SUPERSEDED_DIR])
    corpus = None
    if args.corpus:
        from probekit.corpus.readers import read_corpus
        corpus = read_corpus(args.corpus)
    for task in tasks:
        df = run_grid(store, task, args.out, group_attribute=args.group,
                      probes=_csv(args.probe) if args.probe else None, layers=layers,
                      seeds=args.seeds,
                      train_sets=_csv(args.train_sets) if args.train_sets else None,
                      corpus=corpus, progress=not args.quiet, device=args.device,
                      stale="retire" if args.retire_stale else "error",
                      **({"max_epochs": args.max_epochs} if task.sequences else {}))
        cells = 0 if df.empty else len(df.drop_duplicates(["layer", "train_set", "seed", "probe"]))
        print(f"{task.name}: {cells} new cell(s), {len(df)} row(s)")
    print(f"results: {args.out} ({len(ResultsTable(args.out).load())} rows in total)")
    return 0


def _dedupe(args: argparse.Namespace) -> int:
    from probekit.probes.results import ResultsError, ResultsTable

    table = ResultsTable(args.results)
    if not table.parts():
        raise ResultsError(f"{args.results}: no results parts (part-*.csv)")
    moved, written = table.dedupe()
    if not moved:
        print(f"{args.results}: every cell is in the table once; nothing to do")
        return 0
    print(f"{args.results}: kept each cell's first part; moved {len(moved)} part(s) to "
          f"{moved[0].parent} and wrote {len(written)} part(s) with what they held besides "
          f"repeats ({len(table.load())} rows now)")
    return 0


def _register_results(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("results", help="repair a results table",
                       description="Results-table maintenance. `dedupe` repairs a table that "
                                   "holds a cell more than once (two runs into one folder, "
                                   "written by a probekit that did not lock it): `analyze` and "
                                   "`probe` refuse such a table, naming the cells and parts.")
    rsub = r.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    d = rsub.add_parser("dedupe", help="keep each cell's first part; move repeats to superseded/",
                        description="Keep each cell's first part (in time order). A part holding "
                                    "a cell an earlier part holds, or a row twice, moves to "
                                    "RESULTS_DIR/superseded/ and what it held besides repeats is "
                                    "written as a new part. Nothing is deleted.",
                        epilog="example: probekit results dedupe results/")
    d.add_argument("results", metavar="RESULTS_DIR", help="results table folder (part-*.csv)")
    d.set_defaults(func=_dedupe)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probe", help="train and evaluate probes over layers, groups and seeds",
        description="Run the probe grid on an embedding store and append to a results table. "
                    "Finished cells are skipped, so re-running resumes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  probekit probe --store store/ --task phone --out results/\n"
               "  probekit probe --store store/ --task phone,speaker,group:accent --probe lda,logistic "
               "--out results/")
    p.add_argument("--store", required=True, help="embedding store folder (probekit extract)")
    p.add_argument("--task", default="phone",
                   help="comma list of phone, speaker, group:<attribute>, asr")
    p.add_argument("--out", required=True,
                   help="results folder (appended to; cells are keyed by the store's fingerprint); a "
                        "non-empty folder probekit did not stamp as results is refused")
    p.add_argument("--group", default="accent",
                   help="attribute defining speaker groups, or an intersection such as "
                        "accent*gender (each group needs at least 4 speakers)")
    p.add_argument("--probe", help="comma list of lda, ridge, logistic, mlp (default lda; ctc for asr)")
    p.add_argument("--corpus", help="the store's corpus (needed for --task asr: transcripts)")
    p.add_argument("--layers", type=_layer_list,
                   help="comma list of encoder layer indices or stored layer names, e.g. 0,2 or "
                        "conv,block2 (default: all stored layers)")
    from probekit.cliutil import at_least_one
    p.add_argument("--max-epochs", type=at_least_one,
                   help="training epochs of the CTC probe (--task asr; default the probe's 60, "
                        "the same as a study's); cells already in --out are kept")
    p.add_argument("--seeds", type=_seed_list, default="0,1,2",
                   help="comma list of seeds, integers >= 0 (resample the split)")
    p.add_argument("--train-sets",
                   help="training-set kinds for content tasks: single, all, all-matched, all-but "
                        "(default: all four for phone; all for asr)")
    from probekit.cliutil import add_device_argument
    add_device_argument(p, what="the torch probes (logistic, mlp, ctc)",
                        note="; LDA and ridge always run on the CPU")
    p.add_argument("--retire-stale", action="store_true",
                   help="when --out holds cells of this encoder from another store (a different "
                        "fingerprint), move them to --out/superseded/ instead of refusing")
    p.set_defaults(func=_probe)
    _register_results(sub)
