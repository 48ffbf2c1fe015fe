"""``probekit analyze``: bias tables (CSV), figures (PNG) and a findings note from a results table."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(map(str, parts))).strip("-")


def findings(an) -> str:
    """A short markdown note of what the tables say (statements carry their CIs/p-values)."""
    t, lines = an.tables, ["# Bias analysis findings", "",
                           "Statements hold for this results table's corpus, speakers and probes "
                           "only; on a synthetic corpus they describe the synthesis, not real "
                           "accents. Intervals resample speakers; p-values permute group labels "
                           "across speakers (docs/concepts.md).", ""]
    for note in an.notes:
        lines.append(f"- note: {note}")
    if "layer_curves" in t:
        c = t["layer_curves"]
        small = c[c["statistic"].str.startswith("group:") & (c["n_speakers"] < 8)]
        if len(small):
            lines.append(f"- caution: {small['statistic'].nunique()} group(s) have fewer than 8 "
                         f"test speakers (fewest {int(small['n_speakers'].min())}); their "
                         "intervals are wide and per-group tests have little power")
    if "layer_summary" in t:
        lines += ["", "## Layerwise (probes trained on every group)", ""]
        for _, r in t["layer_summary"][t["layer_summary"]["bias_measure"] == "difference"].iterrows():
            lines.append(f"- {r.encoder} / {r.task} / {r.probe} ({r.metric}, {r.group_attribute}, "
                         f"{r.n_speakers} speakers): lowest error at {r.min_error_layer}; largest "
                         f"max-min gap at {r.max_bias_layer}, smallest at {r.min_bias_layer}; "
                         f"Spearman(error, gap) across {r.n_layers} layers = {r.spearman:+.2f} "
                         f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]")
        c = t["layer_curves"]
        d = c[c["statistic"] == "difference"]
        g = c[c["statistic"].str.startswith("group:")]
        for (enc, task), x in g.groupby(["encoder", "task"]):
            worst = x.loc[x.groupby("layer_index")["estimate"].idxmax()]
            lines.append(f"- {enc} / {task}: worst group per layer: " + ", ".join(
                f"{r.layer} {r.statistic[6:]} {r.estimate:.3f} (p {r.p_value:.3f})"
                for r in worst.itertuples()))
        for (enc, task), x in d.groupby(["encoder", "task"]):
            sig = x[x["p_value"] <= 0.05]["layer"].tolist()
            lines.append(f"- {enc} / {task}: gap exceeds speaker variation (permutation p <= 0.05) "
                         f"at {len(sig)} of {len(x)} layers" + (f": {', '.join(sig)}" if sig else ""))
    if "typing" in t:
        lines += ["", "## Typing per group and layer (Holm-adjusted, alpha 0.05)", ""]
        ty = t["typing"]
        for (enc, task), x in ty.groupby(["encoder", "task"]):
            flagged = x[x["type"] != "neither"]
            counts = x["type"].value_counts().to_dict()
            lines.append(f"- {enc} / {task}: {counts} (random evidence: "
                         f"{', '.join(sorted(x['random_source'].unique()))})")
            for g, y in flagged.groupby("group"):
                lines.append(f"  - {g}: " + ", ".join(f"{r.layer} {r.type}" for r in y.itertuples()))
    if "own_vs_broad" in t and len(t["own_vs_broad"]):
        o = t["own_vs_broad"]
        lines += ["", "## Own-group vs broadly-trained probe (seed 001's sign of systematic bias)", ""]
        for ref in ("all", "all-but"):
            x = o[o["reference"] == ref]
            if not len(x):
                continue
            wins = x[x["reliable_win"]]
            lines.append(f"- own-group probe reliably beats the '{ref}' probe on its own speakers "
                         f"(sign-flip p <= 0.05 and every seed) in {len(wins)} of {len(x)} "
                         f"(group, layer) cells; lower mean error in "
                         f"{int((x['difference'] < 0).sum())}; fewest speakers per group "
                         f"{int(x['n_speakers'].min())}")
            for g, y in wins.groupby("group"):
                lines.append(f"  - {g}: {', '.join(y['layer'])}")
    if "transfer_generalisation" in t and len(t["transfer_generalisation"]):
        g = t["transfer_generalisation"]
        lines.append(f"- harder groups' probes generalise better (centred Spearman > 0, p <= 0.05) at "
                     f"{int(((g['spearman'] > 0) & (g['p_value'] <= 0.05)).sum())} of {len(g)} "
                     f"(slice, layer) cells; worse at "
                     f"{int(((g['spearman'] < 0) & (g['p_value'] <= 0.05)).sum())}")
    if "dispersion_summary" in t and len(t["dispersion_summary"]):
        lines += ["", "## Random variance: phone-embedding dispersion vs accuracy", ""]
        for r in t["dispersion_summary"].itertuples():
            lines.append(f"- {r.layer} ({r.group_attribute}, {r.accuracy_source} accuracy, "
                         f"{r.n_speakers} speakers): Spearman {r.spearman_dispersion_accuracy:+.2f} "
                         f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]")
    return "\n".join(lines) + "\n"


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
    if "mixed_effects" in an.tables and "typing" in an.tables:
        ty = an.tables["typing"]
        for k, m in an.tables["mixed_effects"].groupby(keys):
            figs.append((f"decomposition_{_slug(*k)}",
                         figures.decomposition_bars(m, ty.merge(pd.DataFrame([dict(zip(keys, k))])))))
    if "dispersion_speakers" in an.tables:
        for attr, d in an.tables["dispersion_speakers"].groupby("group_attribute"):
            figs.append((f"dispersion_{_slug(attr)}", figures.dispersion_scatter(d)))
    for name, fig in figs:
        fig.savefig(out / "figures" / f"{name}.png", dpi=110)
        plt.close(fig)
    (out / "findings.md").write_text(findings(an))
    print(f"wrote {len(an.tables)} tables and {len(figs)} figures to {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("analyze", help="bias analysis of a probe results table",
                       description="Group metrics with speaker-bootstrap CIs and permutation "
                                   "p-values, layer curves, cross-group transfer, mixed model, "
                                   "embedding dispersion and the systematic/random typing.")
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
