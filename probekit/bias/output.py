"""Writing an :class:`~probekit.bias.analysis.Analysis` to a folder: CSV tables, PNG figures and
the findings note. Used by ``probekit analyze`` and by the study runner alike (the library
never goes through its CLI)."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["write_analysis", "findings"]

_KEYS = ["encoder", "task", "probe", "metric", "group_attribute"]


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


def write_analysis(an, folder, *, alpha: float = 0.05, overwrite: bool = False) -> tuple[Path, int]:
    """Write every table (CSV), the figures (``figures/*.png``) and ``findings.md``.

    The folder is owned by the analysis (:func:`probekit.outdir.claim_output`): it is emptied
    first, so figures of an older analysis never leak into a new report, and a folder that
    probekit did not write is refused. Returns ``(folder, number of figures)``.
    """
    from probekit.bias import figures
    from probekit.outdir import claim_output

    from probekit.bias.decision import decide, has_decisions

    if not has_decisions(an.tables):  # an Analysis built by hand: the same one decision
        an.tables = decide(an.tables, alpha=alpha)
    out = claim_output(folder, "analysis", fresh=True, overwrite=overwrite)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, table in an.tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    figs = []
    t = an.tables
    if "layer_curves" in t:
        for k, c in t["layer_curves"].groupby(_KEYS[1:]):
            figs.append((f"layer_curves_{_slug(*k)}", figures.layer_curves(c)))
    if "transfer_matrix" in t:
        for k, m in t["transfer_matrix"].groupby(_KEYS):
            figs.append((f"transfer_{_slug(*k)}", figures.transfer_heatmaps(m)))
    if "typing" in t:
        for k, ty in t["typing"].groupby(_KEYS):
            figs.append((f"decomposition_{_slug(*k)}", figures.decomposition_bars(ty)))
    if "dispersion_speakers" in t:
        for attr, d in t["dispersion_speakers"].groupby("group_attribute"):
            figs.append((f"dispersion_{_slug(attr)}", figures.dispersion_scatter(d)))
    for name, fig in figs:
        fig.savefig(out / "figures" / f"{name}.png", dpi=110)  # pyplot-free: nothing to close
    (out / "findings.md").write_text(findings(an, alpha))
    return out, len(figs)
