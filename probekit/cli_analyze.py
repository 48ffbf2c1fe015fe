"""``probekit analyze``: bias tables (CSV), figures (PNG) and a findings note from a results table.

A top-level command module (like :mod:`probekit.cli_compare`): the findings note is prose,
which lives in :mod:`probekit.report`, and no module of :mod:`probekit.bias` imports it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


log = logging.getLogger(__name__)


def _analyze(args: argparse.Namespace) -> int:
    from probekit.bias.analysis import analyze
    from probekit.bias.errors import BiasInputError
    from probekit.outdir import check_output_path
    from probekit.probes.results import ResultsTable

    # a bad --out (a file, a link, read-only, an input) fails before the resampling
    check_output_path(args.out, inputs=(args.results, *(args.store or [])), option="--out")
    df = ResultsTable(args.results).load()
    if df.empty:
        raise BiasInputError(f"{args.results}: no results parts (part-*.csv)")
    stores = None
    if args.store:
        from probekit.store.store import EmbeddingStore
        stores = [EmbeddingStore.open(s) for s in args.store]
    an = analyze(df, store=stores, n_boot=args.n_boot, n_perm=args.n_perm, alpha=args.alpha,
                 seed=args.seed)
    from probekit.report import findings_note
    # analyze owns --out: what it wrote there before is removed first (its stamp lists it).
    stores = [s for s in (args.store if isinstance(args.store, list) else [args.store]) if s]
    fp = {"results": str(Path(args.results).resolve()), "rows": len(df),
          "stores": [str(Path(s).resolve()) for s in stores], "n_boot": args.n_boot,
          "n_perm": args.n_perm, "alpha": args.alpha, "seed": args.seed}
    out, n_figs = an.save(args.out, findings=findings_note(an), overwrite=args.overwrite,
                          inputs=(args.results, *stores), fingerprint=fp)
    print(f"wrote {len(an.tables)} tables and {n_figs} figures to {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("analyze", help="bias analysis of a probe results table",
                       description="Group metrics with split-and-speaker bootstrap CIs and "
                                   "permutation p-values (family-wise over layers x groups), "
                                   "layer curves, cross-group transfer, count model, embedding "
                                   "dispersion and the systematic/random typing.")
    p.add_argument("results", metavar="RESULTS_DIR", help="results table folder (part-*.csv)")
    p.add_argument("--store", action="append", metavar="STORE",
                   help="embedding store folder (adds phone-embedding dispersion and the random "
                        "test); repeatable, one per encoder: each store is matched to the "
                        "encoder whose results it produced (by fingerprint), and an encoder "
                        "without one is typed with random 'not assessed'")
    p.add_argument("--out", required=True,
                   help="output folder for CSV tables and PNG figures; probekit owns it: it is "
                        "cleared (what its stamp lists) on every run; a folder probekit did not write, or "
                        "one holding RESULTS_DIR, is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another kind of probekit output in --out")
    from probekit.cliutil import at_least_one, level, seed
    p.add_argument("--n-boot", type=at_least_one, default=1000,
                   help="speaker bootstrap replicates (>= 1)")
    p.add_argument("--n-perm", type=at_least_one, default=1000, help="permutations (>= 1)")
    p.add_argument("--alpha", type=level, default=0.05, help="1 - CI level and test level")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the bootstrap and permutations (0 to 2**32 - 1)")
    p.set_defaults(func=_analyze)
