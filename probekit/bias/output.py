"""Writing an :class:`~probekit.bias.analysis.Analysis` to a folder: CSV tables, PNG figures and
the findings note. Used by ``probekit analyze`` and by the study runner alike (the library
never goes through its CLI)."""

from __future__ import annotations

from pathlib import Path

from probekit.cliutil import slug as _slug

__all__ = ["write_analysis", "verify_analysis", "findings"]

_KEYS = ["encoder", "task", "probe", "metric", "group_attribute"]


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


def write_analysis(an, folder, *, alpha: float = 0.05, overwrite: bool = False,
                   inputs: tuple = (), fingerprint=None) -> tuple[Path, int]:
    """Write every table (CSV), the figures (``figures/*.png``) and ``findings.md``.

    The folder is owned by the analysis (:func:`probekit.outdir.claim_output`): what an older
    analysis wrote there is removed first, so its figures never leak into a new report, and a
    folder that probekit did not write, or that holds one of ``inputs``, is refused. The stamp
    lists every table with its row count once all is written (:func:`verify_analysis` checks
    them). Returns ``(folder, number of figures)``.
    """
    from probekit.bias import figures
    from probekit.outdir import claim_output, finish_output

    from probekit.bias.decision import decide, has_decisions

    if not has_decisions(an.tables):  # an Analysis built by hand: the same one decision
        an.tables = decide(an.tables, alpha=alpha)
    out = claim_output(folder, "analysis", fresh=True, overwrite=overwrite, command="analyze",
                       inputs=inputs, fingerprint=fingerprint, contents=[f"{n}.csv" for n in an.tables]
                       + ["figures", "findings.md"])
    from probekit.atomic import savefig, to_csv, write_json, write_text
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for name, table in an.tables.items():
        to_csv(table, out / f"{name}.csv", index=False)
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
        d_all = t["dispersion_speakers"]
        by = ["encoder", "group_attribute"] if "encoder" in d_all.columns else ["group_attribute"]
        for k, d in d_all.groupby(by):
            figs.append((f"dispersion_{_slug(*k)}", figures.dispersion_scatter(d)))
    for name, fig in figs:
        savefig(fig, out / "figures" / f"{name}.png", dpi=110)  # pyplot-free: nothing to close
    write_text(out / "findings.md", findings(an, alpha))
    if getattr(an, "provenance", None):
        from probekit.provenance import PROVENANCE_NAME
        write_json(out / PROVENANCE_NAME, an.provenance, default=str)
    finish_output(out, tables={n: int(len(t)) for n, t in an.tables.items()},
                  columns={n: [str(c) for c in t.columns] for n, t in an.tables.items()})
    return out, len(figs)


def verify_analysis(folder) -> dict:
    """Refuse (naming it) an analysis folder that probekit did not finish writing, or whose
    tables are missing, changed length or lost a column since; returns its stamp."""
    import pandas as pd

    from probekit.outdir import OutputFolderError, require_output

    folder = Path(folder)
    stamp = require_output(folder, "analysis", " (run probekit analyze RESULTS --out FOLDER)")
    tables = stamp.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise OutputFolderError(f"{folder}: its stamp lists no tables; run probekit analyze again")
    columns = stamp.get("columns") or {}  # absent in analyses written before it was recorded
    if not isinstance(columns, dict):
        raise OutputFolderError(f"{folder}: its stamp field 'columns' is not an object; run "
                                "probekit analyze again")
    for name, n in tables.items():
        path = folder / f"{name}.csv"
        if isinstance(n, bool) or not isinstance(n, int):
            raise OutputFolderError(f"{folder}: its stamp field 'tables.{name}' must be a row "
                                    f"count, found {n!r}; run probekit analyze again")
        if not path.is_file():
            raise OutputFolderError(f"{folder}: table {path.name} is missing (the analysis wrote "
                                    f"{n} rows there); run probekit analyze again")
        try:
            df = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            df = pd.DataFrame()
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise OutputFolderError(f"{folder}: table {path.name} is unreadable ({exc})") from None
        got = len(df)
        lost = [c for c in columns.get(name, []) if c not in df.columns]
        if lost:
            raise OutputFolderError(f"{folder}: table {path.name} lacks column "
                                    f"{', '.join(map(repr, lost[:5]))} (the analysis wrote it; "
                                    "edited?); run probekit analyze again")
        if got != n:
            raise OutputFolderError(f"{folder}: table {path.name} has {got} rows, the analysis "
                                    f"wrote {n} (truncated or edited?); run probekit analyze again")
    return stamp
