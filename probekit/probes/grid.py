"""The probe grid: layers x training sets x seeds for one task, written to the results table.

For a content task (``phone``) every training set (each single group, all groups pooled,
all-but-one group; equal sizes, :func:`~probekit.probes.splits.equal_training_sets`) trains
one probe per layer and seed, and every probe is evaluated on every group's held-out speakers
and sentences. ``speaker`` (SID) and ``group:<attribute>`` (group-ID) train on ``all`` only:
a speaker-ID probe can only name speakers it was trained on, and a group-ID probe trained on
one group has one class. Seeds resample the speaker (and sentence) split and seed the probe.

Rows are per test speaker (``unit`` = speaker id) and per test group (``unit="all"``). Phone
errors are scored over the labels that *every* training set of the seed saw
(:func:`shared_labels`): a test token whose label some compared probe never saw (a phone only
one group's transcriptions use) would count as an error of that probe only, and an
own-vs-broad or group comparison would read it as bias; those tokens are left out of every
probe's score alike (``n`` counts the scored tokens) and their number is logged per seed.
Speaker-ID and group-ID probes train on ``all`` only, so for them a label unseen in training
still counts as an error, never dropped.
Finished cells (:data:`~probekit.probes.results.CELL_KEYS`) already in the table are skipped,
so a re-run or an interrupted run only computes what is missing; each (layer, seed) is
appended as one part file. Several processes may run grids on one table at once (shards of
one grid, or the same grid twice): the table is re-read before each (layer, seed), and each
append holds the table's writer lock and leaves out cells another process wrote meanwhile,
so a cell is in the table once (``docs/scaling.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone

from probekit.errors import ProbekitError
from probekit.registry import Registry
from probekit.probes.results import ResultsTable, cell_key, validate_results
from probekit.probes.grid_rows import TestUnits, _asr_rows
from probekit.probes.grid_scoring import stream_errors
from probekit.probes.grid_stats import fit_sets, set_statistics, uses_statistics
from probekit.probes.splits import (DRAW_VERSION, TrainingSet, equal_training_sets,
                                    missing_sentence_ids, sentence_status)
from probekit.probes.tasks import GroupTask, Task, get_task

log = logging.getLogger(__name__)

__all__ = ["register_probe", "available_probes", "make_probe", "run_grid", "GridError", "shared_labels"]


class GridError(ProbekitError, ValueError):
    """The grid cannot run on this store/task/configuration."""


def _lda(seed):
    from probekit.probes.lda import LDAProbe
    return LDAProbe(shrinkage="oas", random_state=seed)


def _ridge(seed):
    from probekit.probes.linear import LinearProbe
    return LinearProbe(alpha=30.0, random_state=seed)


def _logistic(seed):
    from probekit.probes.logistic import TorchLogisticProbe
    return TorchLogisticProbe(C=1.0, max_iter=100, random_state=seed)


def _ctc(seed):
    from probekit.probes.ctc import CTCProbe
    return CTCProbe(random_state=seed)


def _mlp(seed):
    from probekit.probes.mlp import MLPProbe
    return MLPProbe(hidden_size=256, random_state=seed)


#: Probe factories by name: ``seed -> unfitted estimator`` (scikit-learn contract).
_PROBES: Registry[Callable[[int], object]] = Registry("probe")
_PROBES.add("lda", _lda), _PROBES.add("ridge", _ridge), _PROBES.add("logistic", _logistic)
_PROBES.add("mlp", _mlp), _PROBES.add("ctc", _ctc)


def register_probe(name: str, factory: Callable[[int], object]) -> None:
    """Add a probe: ``factory(seed)`` returns an unfitted scikit-learn-style classifier.

    The same factory again is allowed; another one under a taken name raises
    :class:`~probekit.registry.RegistryError` naming both (no silent overwrite)."""
    if not callable(factory):
        raise GridError(f"probe {name!r}: the factory must be callable as factory(seed), "
                        f"got {factory!r}")
    _PROBES.add(name, factory)


def available_probes() -> list[str]:
    """Registered probe names (:func:`register_probe`), sorted."""
    return _PROBES.names()


#: Attribute :func:`make_probe` sets on the estimators it builds: their registered name, which
#: the grid writes in the ``probe`` column (an estimator built otherwise is named by its class).
_NAME_ATTR = "_probekit_name"


def make_probe(probe, seed: int = 0, device: str | None = None, **params):
    """An unfitted estimator from a registered name or an estimator instance (cloned, with
    ``random_state=seed`` when it has that parameter, and ``device`` when given and the
    estimator has one: the torch probes logistic, mlp and ctc). ``params`` are set on it
    (``make_probe("ctc", max_epochs=15)``); one built from a name keeps that name in the
    results' ``probe`` column when passed to :func:`run_grid`."""
    if isinstance(probe, str):
        if probe not in _PROBES:
            raise GridError(f"unknown probe {probe!r}; registered: {_PROBES.names()}")
        est = _PROBES[probe](seed)
        name = probe
    else:
        name = getattr(probe, _NAME_ATTR, None)
        est = clone(probe)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
    if device is not None and hasattr(est, "get_params") and "device" in est.get_params():
        est.set_params(device=device)
    if params:
        est.set_params(**params)
    if name is not None:
        setattr(est, _NAME_ATTR, name)
    return est


def _add_intersection(meta: pd.DataFrame, group_attribute: str, attributes) -> None:
    """Derive the ``group:a*b`` column of an intersectional attribute in place
    (:func:`probekit.store.store.add_intersection_column`)."""
    from probekit.errors import StoreError
    from probekit.store.store import add_intersection_column

    try:
        add_intersection_column(meta, group_attribute, attributes)
    except StoreError as exc:
        raise GridError(str(exc)) from None


def _check_stale(table: ResultsTable, encoder: str, key: str, stale: str) -> None:
    """Cells of ``encoder`` from another store make the table stale: refuse or retire them."""
    other = table.stores().get(encoder, set()) - {key}
    if not other:
        return
    if stale == "retire":
        moved = table.retire(lambda d: bool(((d["encoder"] == encoder) & (d["store"] != key)).any()))
        log.warning("moved %d results part(s) of %s computed from another store to %s",
                    len(moved), encoder, table.root / "superseded")
        return
    old = ", ".join(sorted(k or "(unkeyed, older probekit)" for k in other))
    raise GridError(
        f"{table.root} holds results for encoder {encoder!r} computed from another embedding "
        f"store (store {old}; this store is {key}): mixing them would analyse stale cells. "
        "Use a new results folder, or retire the old cells (--retire-stale, "
        "run_grid(stale='retire')), which moves them to superseded/")


def _probe_name(probe) -> str:
    """The ``probe`` column: the registered name (also of an estimator :func:`make_probe`
    built from one), else the estimator's class name."""
    if isinstance(probe, str):
        return probe
    return getattr(probe, _NAME_ATTR, None) or type(probe).__name__


def shared_labels(y: np.ndarray, sets) -> np.ndarray:
    """Labels that every training set saw: the labels a phone error is scored over."""
    out = None
    for ts in sets:
        seen = np.unique(y[ts.rows])
        out = seen if out is None else np.intersect1d(out, seen)
    return out if out is not None else np.array([], dtype=y.dtype)


def run_grid(store, task: str | Task, results: str | ResultsTable, *, group_attribute: str = "accent",
             probes: Sequence | None = None, layers: Sequence | None = None,
             seeds: Sequence[int] = (0, 1, 2), train_sets: Sequence[str] | None = None,
             encoder: str | None = None, corpus=None, test_speakers: float = 0.5,
             progress: bool = True, device: str | None = None,
             stale: str = "error", max_epochs: int | None = None) -> pd.DataFrame:
    """Train and evaluate probes over layers x training sets x seeds; append to ``results``.

    Parameters
    ----------
    store : EmbeddingStore
    task : str or Task
        ``"phone"``, ``"speaker"``, ``"group:<attribute>"`` or ``"asr"`` (a CTC head on the
        store's ``frames``; needs ``corpus`` for the transcripts); see
        :func:`probekit.probes.tasks.get_task`.
    results : path or ResultsTable
        Results folder; cells already in it are skipped, and so are cells another process
        (e.g. another shard of the grid) writes there meanwhile: each cell is written once.
    group_attribute : str
        Attribute that defines the speaker groups (e.g. ``"accent"``, ``"gender"``), or an
        intersection such as ``"accent*gender"`` (labels ``"es*female"``; every group needs
        :data:`~probekit.corpus.model.MIN_INTERSECTION_SPEAKERS` speakers, else GridError).
    probes : sequence of str or estimators, optional
        Registered names (:func:`available_probes`) or scikit-learn-style estimators (the ``probe``
        column names an estimator by its class, or by its registered name when
        :func:`make_probe` built it); default: the task's ``default_probes`` (``("lda",)``,
        ``("ctc",)`` for ``asr``).
    layers : sequence of int or str, optional
        Default: every stored layer. The results' ``layer_index`` is the layer's index among
        the *encoder's* layers (0 = the front end), whichever layers the store holds; parts
        written when it was a position among the stored layers are retired
        (:meth:`ResultsTable.retire_layer_positions`).
    seeds : sequence of int
    train_sets : kinds for content tasks (see :func:`equal_training_sets`); default the
        task's ``default_train_sets``. SID and group-ID always train on ``all``.
    corpus : Corpus, optional
        The store's corpus; required for ``asr`` (transcripts are not in the store).
    test_speakers : float
        Share of each group's speakers held out for content tasks (default half: per-group
        statistics over test speakers need several speakers per group).
    encoder : str, optional
        Name in the table; default: the store's encoder name.
    device : str, optional
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` for the torch probes (logistic,
        mlp, ctc); LDA and ridge run on the CPU. Default: each probe's own (the CPU).
    stale : {"error", "retire"}
        What to do when the table holds cells of this encoder name from a *different* store
        (another fingerprint): refuse (default), or move those parts to ``superseded/``.
    max_epochs : int, optional
        Training epochs of the CTC probe (task ``asr`` only; default the probe's own, 60, from
        the CLI and a study alike). Cells already in ``results`` are kept whatever their
        epochs: write to a new results folder to compare epochs.

    Returns
    -------
    DataFrame
        The rows written by this call (empty when everything was already done).

    Raises
    ------
    DuplicateCellsError
        When ``results`` already holds a cell twice (see :meth:`ResultsTable.dedupe`).
    """
    from tqdm.auto import tqdm

    table = results if isinstance(results, ResultsTable) else ResultsTable(results)
    seeds = list(seeds)
    try:
        task = get_task(task)
    except ProbekitError as exc:
        raise GridError(str(exc)) from None
    encoder = encoder or store.fingerprint["encoder"]
    if stale not in ("error", "retire"):
        raise GridError(f"stale must be 'error' or 'retire', got {stale!r}")
    intersection = "*" in group_attribute
    if not intersection and group_attribute not in store.index["attributes"]:
        raise GridError(f"the store's corpus has no group attribute {group_attribute!r}; "
                        f"attributes: {store.index['attributes']}")
    group_col = GroupTask(group_attribute).column  # the store metadata column of the groups
    layer_names = [store.layer_name(l) for l in (layers if layers is not None else store.layers)]
    # a store that does not list its encoder's layers (a test double) holds all of them
    layer_index = {n: i for i, n in enumerate(store.index.get("encoder_layer_names") or store.layers)}
    kinds = task.train_sets(train_sets)
    from probekit.store.store import fingerprint_key
    key = getattr(store, "key", None) or fingerprint_key(store.fingerprint)
    _check_stale(table, encoder, key, stale)
    if any(layer_index[n] != i for i, n in enumerate(store.layers)):  # else positions = indices
        table.retire_layer_positions(encoder, key, layer_index)
    draw = DRAW_VERSION if task.content else "1"
    if task.content:
        table.retire_draws(encoder, task.name, draw)
    done = table.done_cells()
    written = []
    # Metadata is shared by every layer of a pooling; read it once via the first layer.
    sequences = task.sequences
    if max_epochs is not None and (not sequences or int(max_epochs) < 1):
        raise GridError(f"max_epochs={max_epochs!r}: it sets the CTC probe's epochs (task 'asr', "
                        f"a positive integer), not task {task.name!r}'s")
    probes = tuple(probes or task.default_probes)
    if task.needs_corpus and corpus is None:
        raise GridError(f"task {task.name!r} needs the corpus (transcripts are not stored): "
                        "pass corpus=")
    if sequences:
        if "frames" not in store.poolings:
            raise GridError(f"task {task.name!r} needs the 'frames' pooling; store {store.root} "
                            f"has {store.poolings} (re-extract with --pooling ...,frames)")
        _, meta = store.read_sequences(layer_names[0], corpus)
        y = task.labels(meta)
        frame_level = [p for p in probes if isinstance(p, str) and p not in task.default_probes]
        if frame_level:
            raise GridError(f"task {task.name!r} takes sequence probes (e.g. "
                            f"{task.default_probes[0]!r}), not {frame_level}")
    else:
        _, y, meta = store.load_task(layer_names[0], task.name, lazy=True)  # metadata only
    if intersection:
        _add_intersection(meta, group_attribute, store.index["attributes"])
    splits = {s: task.split(meta, group_col, s, test_speakers) for s in seeds}
    sentence_split = {s: sentence_status(meta, splits[s]) for s in seeds}
    if missing_sentence_ids(meta):
        log.warning("%d of %d %s examples have no sentence id (no prompt id and no transcript): "
                    "sentences may repeat across the split", missing_sentence_ids(meta), len(meta),
                    task.name)
    sets = {s: (equal_training_sets(meta, splits[s].train, group_col, s, kinds)
                if task.content else _pooled_all(meta, splits[s].train, task.balance_key(group_col), s))
            for s in seeds}
    scored = {s: splits[s].test for s in seeds}
    if task.shared_labels_only:
        for s in seeds:
            keep = np.isin(y[splits[s].test], shared_labels(y, sets[s]))
            if not keep.all():
                left = sorted(set(y[splits[s].test[~keep]].tolist()))
                log.warning("seed %s: %d of %d test tokens have a label that not every training "
                            "set saw (%s); they are not scored for any probe", s,
                            int((~keep).sum()), keep.size, ", ".join(map(str, left[:10])))
            scored[s] = splits[s].test[keep]
    cells = [(layer, s, ts, p) for layer in layer_names for s in seeds for ts in sets[s] for p in probes]
    bar = tqdm(total=len(cells), desc=f"probe {task.name}", disable=not progress, unit="cell")

    def cell(layer, s, ts, p):
        return {"encoder": encoder, "store": key, "layer": layer, "layer_index": layer_index[layer],
                "task": task.name, "probe": _probe_name(p), "group_attribute": group_attribute,
                "train_set": ts.name, "seed": s, "n_train": len(ts.rows), "draw": draw,
                "n_train_speakers": ts.n_speakers, "sentence_split": sentence_split[s]}

    shared = not sequences and task.content and uses_statistics(probes)
    units = {} if sequences else {s: TestUnits(meta, scored[s], group_col) for s in seeds}
    for li, layer in enumerate(layer_names):
        X, wrong = None, {}
        if shared:  # LDA/ridge: every cell of the layer from one pass (probes/grid_stats.py)
            todo = [(s, ts, p) for s in seeds for ts in sets[s] for p in probes
                    if cell_key(cell(layer, s, ts, p)) not in done]
            if todo:
                X = store.load_task(layer, task.name, lazy=True)[0]  # read in blocks
                stats = set_statistics(X, y, meta, {s: splits[s].train for s in seeds},
                                       {(s, ts.name): (s, ts) for s, ts, _ in todo})
                for s, ts, p in todo:
                    if (stats[(s, ts.name)].class_counts > 0).sum() < 2:
                        raise GridError(f"training set {ts.name!r} (seed {s}) has one class "
                                        f"for task {task.name!r}")
                fitted = fit_sets({(s, ts.name, p): stats[(s, ts.name)] for s, ts, p in todo},
                                  lambda key: make_probe(key[2], key[0], device))
                wrong = stream_errors(X, y, scored, {k: (k[0], est) for k, est in fitted.items()})
        rows: list[dict] = []
        for s in seeds:
            split = splits[s]
            done = table.done_cells()  # cells other processes wrote since (reads new parts only)
            for ts in sets[s]:
                for p in probes:
                    base = cell(layer, s, ts, p)
                    bar.update(1)
                    if cell_key(base) in done:
                        continue
                    if shared:
                        if (s, ts.name, p) in wrong:
                            rows.extend(units[s].rows(wrong[(s, ts.name, p)], base))
                        continue
                    if sequences:
                        if X is None:
                            X = store.read_sequences(layer)[0]
                        est = make_probe(p, s, device)
                        if max_epochs is not None and "max_epochs" in est.get_params():
                            est.set_params(max_epochs=int(max_epochs))
                        # X is lazy (FrameSequences): the probe reads a batch at a time
                        est = est.fit(X[ts.rows], list(y[ts.rows]))
                        hyps = est.predict(X[split.test])
                        rows.extend(_asr_rows(meta, split.test, hyps, group_col, base))
                        continue
                    if X is None:  # read in pieces: the training rows, then test chunks
                        X = store.load_task(layer, task.name, lazy=True)[0]
                    y_train = y[ts.rows]
                    if len(np.unique(y_train)) < 2:
                        raise GridError(f"training set {ts.name!r} (seed {s}) has one class "
                                        f"({y_train[0]!r}) for task {task.name!r}")
                    est = make_probe(p, s, device).fit(X.take(ts.rows).astype(np.float32, copy=False), y_train)
                    test = scored[s]
                    wrong = np.concatenate([est.predict(Xc.astype(np.float32, copy=False)) != y[i]
                                            for i, Xc in X.chunks(rows=test)] or [np.zeros(0, bool)])
                    rows.extend(units[s].rows(wrong, base))
            if rows and not (shared and s != seeds[-1]):  # the shared path: one part a layer
                # under the table's lock, cells another process wrote meanwhile are left out
                part = table.append(validate_results(pd.DataFrame(rows)), done="skip")
                if part is not None:
                    written.append(table.read_part(part))
                rows = []
    bar.close()
    return pd.concat(written, ignore_index=True) if written else table.load().iloc[0:0]


def _pooled_all(meta: pd.DataFrame, train: np.ndarray, key: str, seed: int):
    """The single ``all`` training set for SID and group-ID: balanced over ``key`` (the
    task's :meth:`~probekit.probes.tasks.Task.balance_key`: the groups, and for SID the
    speakers, the same number of training utterances each)."""
    rng = np.random.default_rng(seed + 104729)
    tm = meta.iloc[train]
    counts = tm.groupby(key).size()
    n = int(counts.min())
    picked = np.sort(np.concatenate([rng.choice(train[(tm[key] == k).to_numpy()], size=n, replace=False)
                                     for k in counts.index]))
    return [TrainingSet("all", picked, int(meta["speaker"].iloc[picked].nunique()))]
