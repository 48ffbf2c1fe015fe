"""Run a study end to end: corpus -> store (every encoder) -> probe grids -> bias analysis ->
report. Every stage is cached in the output folder and skipped when already done, so a
second run of the same config only rebuilds the report.

Output folder layout::

    OUT/study.json          the config and its fingerprint (a different config is refused)
    OUT/work/stores/<enc>/  embedding stores (probekit.store)
    OUT/work/results/       the probe results table (part-*.csv)
    OUT/analysis/           bias tables (CSV), figures (PNG) and findings.md (probekit analyze)
    OUT/work/train/<method>/ fine-tuning runs of a [training] section (adapters, merged model,
                            test transcripts; see training.finetune)
    OUT/compare/            before/after comparison (Comparison.save: tables, comparison.json,
                            WER table and figure; the same files as probekit compare --out)
    OUT/report.html         the self-contained report; OUT/report.md its markdown twin
    OUT/run.json            timings, fingerprints and versions of the last run
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from probekit.atomic import write_json
from probekit.jsonfile import BadFileError, read_json_object
from probekit.provenance import versions
from probekit.study.config import StudyConfig
from probekit.study.folder import (STUDY_CONTENTS, STUDY_RECORD, STUDY_STAMP,  # noqa: F401
                                   StudyError, _slug, invalidate_changed, prepare_output)
from probekit.study.stages import compare_stage, train_stage

__all__ = ["StudyError", "StudyRun", "run_study", "prepare_output", "load_study_corpus",
           "invalidate_changed"]

log = logging.getLogger(__name__)


@dataclass
class StudyRun:
    """Where a finished study's outputs are, and how long each stage took (seconds)."""

    out: Path
    report_html: Path
    report_md: Path
    analysis: Path
    timings: dict = field(default_factory=dict)
    reused: bool = False


def load_study_corpus(config: StudyConfig, progress: bool = True):
    """The study's corpus: a (cached) synthetic preset with overrides, or a corpus on disk.

    ``phone_folding`` (a folding name or a list, :mod:`probekit.corpus.phonesets`) folds the
    phone labels; ``intersections`` (e.g. ``["accent*gender"]``) adds derived group attributes
    (:meth:`~probekit.corpus.Corpus.with_intersection`).
    """
    c = dict(config.corpus)
    folding = c.pop("phone_folding", None)
    intersections = c.pop("intersections", None) or []
    if "*" in config.group_attribute and config.group_attribute not in intersections:
        intersections = [*intersections, config.group_attribute]
    if "synthetic" in c:
        from probekit.corpus.synthetic import build_synthetic_corpus, resolve_config
        preset = c.pop("synthetic")
        corpus = build_synthetic_corpus(resolve_config(preset, **c), progress=progress)
    else:
        from probekit.corpus.readers import read_corpus
        path = c.pop("path")
        corpus = read_corpus(path, **c)
    if folding:
        from probekit.corpus.phonesets import fold_corpus
        corpus, unknown = fold_corpus(corpus, folding)
        if unknown:
            log.warning("phone folding %s kept %d unknown symbol(s) as written: %s", folding,
                        sum(unknown.values()), dict(unknown.most_common(10)))
    for attr in intersections:
        corpus = corpus.with_intersection(attr)
    return corpus


#: Version of the analysis's statistics: bumped whenever a test, a typing rule or a decision
#: changes, so a study never reuses an analysis computed by other statistics (2: issue 19's
#: typing, two-null layer tests and one decision column).
ANALYSIS_METHOD = 2


def _analysis_done(folder: Path, n_rows: int, config: StudyConfig) -> bool:
    stamp = folder / "analysis.json"
    if not stamp.exists() or not (folder / "findings.md").exists():
        return False
    try:  # a damaged marker (e.g. by hand) only means: compute the analysis again
        s = read_json_object(stamp, "analysis marker", {"n_rows": int, "fingerprint": str})
    except BadFileError as exc:
        log.warning("%s; the analysis is computed again", exc)
        return False
    # an analysis by other statistics (an older probekit) is never reused under new prose
    return (s.get("n_rows") == n_rows and s.get("fingerprint") == config.fingerprint()
            and s.get("method") == ANALYSIS_METHOD)


def run_study(config: StudyConfig, out: str | Path, *, overwrite: bool = False,
              progress: bool = True, device: str | None = None) -> StudyRun:
    """Run ``config`` into ``out`` (see the module docstring); resumable and idempotent.

    Parameters
    ----------
    config : StudyConfig
    out : path
        Output folder; reused when it holds the same config, refused when it holds another
        unless ``overwrite`` (which keeps the stages whose inputs did not change, see
        :func:`prepare_output`); a folder probekit did not write is always refused.
    progress : bool
        tqdm progress bars for synthesis, extraction and the probe grids.
    device : str, optional
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; default the config's (``auto``).

    Returns
    -------
    StudyRun

    Raises
    ------
    LockHeldError
        When another process is running a study into ``out`` (naming it; a killed one's lock
        is taken over).
    """
    from probekit.locks import folder_lock
    with folder_lock(Path(out).expanduser().absolute(), what="study", wait=False):
        return _run_study(config, out, overwrite=overwrite, progress=progress, device=device)


def _run_study(config: StudyConfig, out: str | Path, *, overwrite: bool, progress: bool,
               device: str | None) -> StudyRun:
    from probekit.encoders import load_encoder
    from probekit.encoders.registry import check_options, resolve_family
    from probekit.probes.grid import run_grid
    from probekit.probes.results import ResultsTable
    from probekit.probes.tasks import get_task
    from probekit.report import build_report
    from probekit.store.store import corpus_hash
    from probekit.study.stores import study_store

    for spec in config.encoders:  # an option its family does not take fails now, not midway
        check_options(resolve_family(spec.name), spec.options, name=spec.name)
    out = Path(out).expanduser().absolute()
    reused = prepare_output(out, config, overwrite)
    timings: dict[str, float] = {}
    t_all = t = time.perf_counter()
    corpus = load_study_corpus(config, progress)
    timings["corpus"] = time.perf_counter() - t
    say = print if progress else log.info
    say(f"corpus: {len(corpus)} utterances ({timings['corpus']:.1f} s)")
    results_dir = out / "work" / "results"
    fingerprints = {"config": config.fingerprint(), "corpus": corpus_hash(corpus)}
    encoders, trained = list(config.encoders), None
    if config.training is not None:
        # fine-tune the base encoder with each method; the adapted encoders join the study
        # as encoders and everything is probed on the held-out speakers only
        trained = train_stage(config, corpus, out, timings, progress=progress, say=say,
                              device=device or config.device)
        encoders += trained["encoders"]
        corpus = trained["split"].test
    stores = {}
    for spec in encoders:
        t = time.perf_counter()
        enc = load_encoder(spec.name, device=device or config.device, **spec.options)
        store = study_store(spec, enc, corpus, out / "work" / "stores" / _slug(spec.display),
                            config.poolings, progress)
        del enc
        stores[spec.display] = store
        fingerprints[f"encoder:{spec.display}"] = store.fingerprint["encoder_weights"]
        timings[f"extract:{spec.display}"] = time.perf_counter() - t
        say(f"store {spec.display}: {len(store.layers)} layers ({timings[f'extract:{spec.display}']:.1f} s)")
        for task in config.tasks:
            t = time.perf_counter()
            run_grid(store, task.task, results_dir, group_attribute=config.group_attribute,
                     probes=task.probes, seeds=task.seeds, train_sets=task.train_sets,
                     max_epochs=task.max_epochs,
                     encoder=spec.display, corpus=corpus if get_task(task.task).needs_corpus else None,
                     progress=progress, device=device or config.device, stale="retire",
                     **({"test_speakers": task.test_speakers} if task.test_speakers else {}))
            timings[f"grid:{spec.display}:{task.task}"] = time.perf_counter() - t
            say(f"grid {spec.display} / {task.task}: {timings[f'grid:{spec.display}:{task.task}']:.1f} s")
    t = time.perf_counter()
    n_rows = len(ResultsTable(results_dir).load())
    analysis = out / "analysis"
    if not _analysis_done(analysis, n_rows, config):
        from probekit.bias.analysis import analyze
        from probekit.report import findings_note
        # every encoder's own store (matched by name and fingerprint) decides its random test
        results = ResultsTable(results_dir).load()
        probed = set(results["encoder"].astype(str))
        an = analyze(results, store={k: v for k, v in stores.items() if k in probed}
                     if "phone" in config.poolings else None, n_boot=config.n_boot,
                     n_perm=config.n_perm, alpha=config.alpha, seed=config.seed)
        an.save(analysis, findings=findings_note(an), overwrite=True,
                fingerprint={"study": config.fingerprint(), "rows": n_rows})
        from probekit.outdir import add_contents
        add_contents(analysis, "analysis.json")
        write_json(analysis / "analysis.json",  # last: the analysis is done once it is there
                   {"n_rows": n_rows, "fingerprint": config.fingerprint(),
                     "method": ANALYSIS_METHOD}, indent=None)
    timings["analysis"] = time.perf_counter() - t
    say(f"bias analysis: {timings['analysis']:.1f} s")
    if trained is not None:
        t = time.perf_counter()
        trained["compare"] = compare_stage(config, results_dir, out / "compare", trained)
        timings["compare"] = time.perf_counter() - t
        say(f"before/after comparison: {timings['compare']:.1f} s")
    t = time.perf_counter()
    meta = {"config": config.to_dict(), "config_file": config.source, "fingerprints": fingerprints,
            "stores": {k: v.fingerprint for k, v in stores.items()}, "versions": versions(),
            "synthetic": (f"espeak-ng voices reading English (probekit's synthetic preset "
                          f"{config.corpus['synthetic']!r})" if config.synthetic else False),
            "random_init": [e.display for e in config.encoders if e.random_init],
            "n_utterances": len(corpus), "n_result_rows": n_rows,
            "before_after": str(out / "compare") if trained is not None else None,
            "timings": {k: round(v, 1) for k, v in timings.items()}}
    html, md = build_report(analysis, out, meta)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    meta["timings"] = {k: round(v, 1) for k, v in timings.items()}
    write_json(out / "run.json", meta, default=str)  # last: the study finished
    return StudyRun(out=out, report_html=html, report_md=md, analysis=analysis, timings=timings,
                    reused=reused)
