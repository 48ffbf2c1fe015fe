"""``probekit analyze``: bias tables (CSV), figures (PNG) and a findings note from a results table."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path


log = logging.getLogger(__name__)


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(map(str, parts))).strip("-")


def findings(an, alpha: float = 0.05) -> str:
    """The findings note: the report's plain-words summary of these tables (one prose
    generator, :func:`probekit.report.summary.summary_points`) with the analysis notes."""
    from probekit.report.summary import summary_points

    head = ["# Bias analysis findings", "",
            "Statements hold for this results table's corpus, speakers and probes only; on a "
            "synthetic corpus they describe the synthesis, not real accents. Intervals resample "
            "splits and speakers; p-values permute group labels across speakers or treat the "
            "training draw as a unit; family-wise control as stated (docs/concepts.md).", ""]
    body = summary_points(an.tables, alpha=alpha, notes=an.notes)
    return "\n".join(head + [f"- {p}" for p in body]) + "\n"


def _analyze(args: argparse.Namespace) -> int:
    import matplotlib.pyplot as plt

    from probekit.bias import figures
    from probekit.bias.analysis import analyze
    from probekit.bias.errors import BiasInputError
    from probekit.probes.results import ResultsTable

    df = ResultsTable(args.results).load()
    if df.empty:
        raise BiasInputError(f"{args.results}: no results parts (part-*.csv)")
    store = None
    if args.store:
        from probekit.store.store import EmbeddingStore
        store = EmbeddingStore.open(args.store)
    an = analyze(df, store=store, n_boot=args.n_boot, n_perm=args.n_perm, alpha=args.alpha,
                 seed=args.seed)
    from probekit.outdir import claim_output
    # analyze owns --out: emptied first, so figures of an older analysis never leak through.
    out = claim_output(args.out, "analysis", fresh=True, overwrite=args.overwrite)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, table in an.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    keys = ["encoder", "task", "probe", "metric", "group_attribute"]
    figs = []
    if "layer_curves" in an.tables:
        for k, c in an.tables["layer_curves"].groupby(keys[1:]):
            figs.append((f"layer_curves_{_slug(*k)}", figures.layer_curves(c)))
    if "transfer_matrix" in an.tables:
        for k, m in an.tables["transfer_matrix"].groupby(keys):
            figs.append((f"transfer_{_slug(*k)}", figures.transfer_heatmaps(m)))
    if "typing" in an.tables:
        for k, ty in an.tables["typing"].groupby(keys):
            figs.append((f"decomposition_{_slug(*k)}", figures.decomposition_bars(ty)))
    if "dispersion_speakers" in an.tables:
        for attr, d in an.tables["dispersion_speakers"].groupby("group_attribute"):
            figs.append((f"dispersion_{_slug(attr)}", figures.dispersion_scatter(d)))
    for name, fig in figs:
        fig.savefig(out / "figures" / f"{name}.png", dpi=110)
        plt.close(fig)
    (out / "findings.md").write_text(findings(an, args.alpha))
    print(f"wrote {len(an.tables)} tables and {len(figs)} figures to {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("analyze", help="bias analysis of a probe results table",
                       description="Group metrics with split-and-speaker bootstrap CIs and "
                                   "permutation p-values (family-wise over layers x groups), "
                                   "layer curves, cross-group transfer, count model, embedding "
                                   "dispersion and the systematic/random typing.")
    p.add_argument("results", metavar="RESULTS_DIR", help="results table folder (part-*.csv)")
    p.add_argument("--store", help="embedding store folder (adds phone-embedding dispersion)")
    p.add_argument("--out", required=True,
                   help="output folder for CSV tables and PNG figures; probekit owns it: it is "
                        "emptied on every run, and a folder probekit did not write is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another kind of probekit output in --out")
    p.add_argument("--n-boot", type=int, default=1000, help="speaker bootstrap replicates")
    p.add_argument("--n-perm", type=int, default=1000, help="permutations")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - CI level and test level")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutations")
    p.set_defaults(func=_analyze)
