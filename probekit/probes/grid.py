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
from probekit.probes.results import ResultsTable, cell_key, validate_results
from probekit.probes.splits import (Split, TrainingSet, content_split, equal_training_sets,
                                   missing_sentence_ids, sentence_status, speaker_id_split)

log = logging.getLogger(__name__)

__all__ = ["PROBES", "register_probe", "make_probe", "run_grid", "GridError", "TASKS",
           "shared_labels"]

#: Task names the grid knows (``group:<attribute>`` for any attribute of the store).
TASKS = ("phone", "speaker", "group:<attribute>", "asr")
#: Training-set kinds per task when not given. ``asr`` trains one CTC head per layer and seed
#: on all groups (the layerwise-unfairness paper's ASR error per layer); single-group ASR
#: probes are available with ``train_sets=("single", ...)`` at several times the cost.
DEFAULT_TRAIN_SETS = {"phone": ("single", "all", "all-matched", "all-but"), "asr": ("all",)}


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
PROBES: dict[str, Callable[[int], object]] = {"lda": _lda, "ridge": _ridge, "logistic": _logistic,
                                              "mlp": _mlp, "ctc": _ctc}


def register_probe(name: str, factory: Callable[[int], object]) -> None:
    """Add a probe: ``factory(seed)`` returns an unfitted scikit-learn-style classifier."""
    PROBES[name] = factory


def make_probe(probe, seed: int, device: str | None = None):
    """An unfitted estimator from a registered name or an estimator instance (cloned, with
    ``random_state=seed`` when it has that parameter, and ``device`` when given and the
    estimator has one: the torch probes logistic, mlp and ctc)."""
    if isinstance(probe, str):
        try:
            est = PROBES[probe](seed)
        except KeyError:
            raise GridError(f"unknown probe {probe!r}; registered: {sorted(PROBES)}") from None
    else:
        est = clone(probe)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
    if device is not None and hasattr(est, "get_params") and "device" in est.get_params():
        est.set_params(device=device)
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
    return probe if isinstance(probe, str) else type(probe).__name__


def _error_rows(meta: pd.DataFrame, test: np.ndarray, wrong: np.ndarray, group_col: str,
                base: dict) -> list[dict]:
    tm = meta.iloc[test]
    frame = pd.DataFrame({"speaker": tm["speaker"].to_numpy(), "group": tm[group_col].astype(str).to_numpy(),
                          "wrong": wrong.astype(float)})
    rows = []
    for by in (["group", "speaker"], ["group"]):
        agg = frame.groupby(by, sort=True)["wrong"].agg(["mean", "size"])
        for k, (value, n) in zip(agg.index, agg.to_numpy()):
            g, unit = (k if len(by) == 2 else (k, "all"))
            rows.append({**base, "test_group": g, "unit": unit, "metric": "error",
                         "value": float(value), "n": int(n)})
    return rows


def shared_labels(y: np.ndarray, sets) -> np.ndarray:
    """Labels that every training set saw: the labels a phone error is scored over."""
    out = None
    for ts in sets:
        seen = np.unique(y[ts.rows])
        out = seen if out is None else np.intersect1d(out, seen)
    return out if out is not None else np.array([], dtype=y.dtype)


def _asr_rows(meta: pd.DataFrame, test: np.ndarray, hyps: list[str], group_col: str,
              base: dict) -> list[dict]:
    """CER and WER per test speaker and per test group; n = reference characters / words."""
    from probekit.probes.ctc import aggregate_errors, ctc_errors

    tm = meta.iloc[test]
    errs = ctc_errors(hyps, tm["text"].tolist(), ids=tm["utt_id"].tolist())
    errs["speaker"] = tm["speaker"].to_numpy()
    errs["group"] = tm[group_col].astype(str).to_numpy()
    rows = []
    for by, unit_of in ((["group", "speaker"], lambda k: k[1]), (["group"], lambda k: "all")):
        agg = aggregate_errors(errs, by=by).reset_index()
        for _, r in agg.iterrows():
            key = tuple(r[c] for c in by)
            for metric, n_col in (("cer", "n_chars"), ("wer", "n_words")):
                if r[n_col] > 0:
                    rows.append({**base, "test_group": key[0], "unit": unit_of(key), "metric": metric,
                                 "value": float(r[metric]), "n": int(r[n_col])})
    return rows


def _task_split(task: str, meta: pd.DataFrame, group_col: str, seed: int,
                test_speakers: float) -> Split:
    if task == "speaker":
        return speaker_id_split(meta, seed)
    return content_split(meta, group_col, seed, test_speakers=test_speakers)


def run_grid(store, task: str, results: str | ResultsTable, *, group_attribute: str = "accent",
             probes: Sequence | None = None, layers: Sequence | None = None,
             seeds: Sequence[int] = (0, 1, 2), train_sets: Sequence[str] | None = None,
             encoder: str | None = None, corpus=None, test_speakers: float = 0.5,
             progress: bool = True, device: str | None = None,
             stale: str = "error", max_epochs: int | None = None) -> pd.DataFrame:
    """Train and evaluate probes over layers x training sets x seeds; append to ``results``.

    Parameters
    ----------
    store : EmbeddingStore
    task : str
        ``"phone"``, ``"speaker"``, ``"group:<attribute>"`` or ``"asr"`` (a CTC head on the
        store's ``frames``; needs ``corpus`` for the transcripts).
    results : path or ResultsTable
        Results folder; cells already in it are skipped, and so are cells another process
        (e.g. another shard of the grid) writes there meanwhile: each cell is written once.
    group_attribute : str
        Attribute that defines the speaker groups (e.g. ``"accent"``, ``"gender"``), or an
        intersection such as ``"accent*gender"`` (labels ``"es*female"``; every group needs
        :data:`~probekit.corpus.model.MIN_INTERSECTION_SPEAKERS` speakers, else GridError).
    probes : sequence of str or estimators, optional
        Registered names (:data:`PROBES`) or scikit-learn-style estimators; default
        ``("lda",)``, and ``("ctc",)`` for ``asr``.
    layers : sequence of int or str, optional
        Default: every stored layer.
    seeds : sequence of int
    train_sets : kinds for content tasks (see :func:`equal_training_sets`); default
        :data:`DEFAULT_TRAIN_SETS`. SID and group-ID always train on ``all``.
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
    encoder = encoder or store.fingerprint["encoder"]
    if stale not in ("error", "retire"):
        raise GridError(f"stale must be 'error' or 'retire', got {stale!r}")
    intersection = "*" in group_attribute
    if not intersection and group_attribute not in store.index["attributes"]:
        raise GridError(f"the store's corpus has no group attribute {group_attribute!r}; "
                        f"attributes: {store.index['attributes']}")
    group_col = f"group:{group_attribute}"
    layer_names = [store.layer_name(l) for l in (layers if layers is not None else store.layers)]
    content = task in ("phone", "asr")
    kinds = tuple(train_sets or DEFAULT_TRAIN_SETS[task]) if content else ("all",)
    from probekit.store.store import fingerprint_key
    key = getattr(store, "key", None) or fingerprint_key(store.fingerprint)
    _check_stale(table, encoder, key, stale)
    done = table.done_cells()
    written = []
    # Metadata is shared by every layer of a pooling; read it once via the first layer.
    if max_epochs is not None and (task != "asr" or int(max_epochs) < 1):
        raise GridError(f"max_epochs={max_epochs!r}: it sets the CTC probe's epochs (task 'asr', "
                        f"a positive integer), not task {task!r}'s")
    if task == "asr":
        if corpus is None:
            raise GridError("task 'asr' needs the corpus (transcripts are not stored): pass corpus=")
        if "frames" not in store.poolings:
            raise GridError(f"task 'asr' needs the 'frames' pooling; store {store.root} has "
                            f"{store.poolings} (re-extract with --pooling ...,frames)")
        from probekit.probes.ctc import frames_by_utterance
        _, meta = frames_by_utterance(store, layer_names[0], corpus)
        y = meta["text"].to_numpy()
        probes = tuple(probes or ("ctc",))
        frame_level = [p for p in probes if isinstance(p, str) and p != "ctc"]
        if frame_level:
            raise GridError(f"task 'asr' takes sequence probes (e.g. 'ctc'), not {frame_level}")
    else:
        probes = tuple(probes or ("lda",))
        _, y, meta = store.load_task(layer_names[0], task)
    if intersection:
        _add_intersection(meta, group_attribute, store.index["attributes"])
    splits = {s: _task_split(task, meta, group_col, s, test_speakers) for s in seeds}
    sentence_split = {s: sentence_status(meta, splits[s]) for s in seeds}
    if missing_sentence_ids(meta):
        log.warning("%d of %d %s examples have no sentence id (no prompt id and no transcript): "
                    "sentences may repeat across the split", missing_sentence_ids(meta), len(meta),
                    task)
    sets = {s: (equal_training_sets(meta, splits[s].train, group_col, s, kinds)
                if content else _pooled_all(meta, splits[s].train, group_col, s, task))
            for s in seeds}
    scored = {s: splits[s].test for s in seeds}
    if task == "phone":
        for s in seeds:
            keep = np.isin(y[splits[s].test], shared_labels(y, sets[s]))
            if not keep.all():
                left = sorted(set(y[splits[s].test[~keep]].tolist()))
                log.warning("seed %s: %d of %d test tokens have a label that not every training "
                            "set saw (%s); they are not scored for any probe", s,
                            int((~keep).sum()), keep.size, ", ".join(map(str, left[:10])))
            scored[s] = splits[s].test[keep]
    cells = [(layer, s, ts, p) for layer in layer_names for s in seeds for ts in sets[s] for p in probes]
    bar = tqdm(total=len(cells), desc=f"probe {task}", disable=not progress, unit="cell")
    for li, layer in enumerate(layer_names):
        X = None
        for s in seeds:
            rows: list[dict] = []
            split = splits[s]
            done = table.done_cells()  # cells other processes wrote since (reads new parts only)
            for ts in sets[s]:
                for p in probes:
                    base = {"encoder": encoder, "store": key, "layer": layer, "layer_index": store.layers.index(layer),
                            "task": task, "probe": _probe_name(p), "group_attribute": group_attribute,
                            "train_set": ts.name, "seed": s, "n_train": len(ts.rows),
                            "n_train_speakers": ts.n_speakers, "sentence_split": sentence_split[s]}
                    bar.update(1)
                    if cell_key(base) in done:
                        continue
                    if task == "asr":
                        if X is None:
                            X = frames_by_utterance(store, layer)[0]
                        est = make_probe(p, s, device)
                        if max_epochs is not None and "max_epochs" in est.get_params():
                            est.set_params(max_epochs=int(max_epochs))
                        est = est.fit([X[i] for i in ts.rows], list(y[ts.rows]))
                        hyps = est.predict([X[i] for i in split.test])
                        rows.extend(_asr_rows(meta, split.test, hyps, group_col, base))
                        continue
                    if X is None:
                        X = np.asarray(store.load_task(layer, task)[0], dtype=np.float32)
                    y_train = y[ts.rows]
                    if len(np.unique(y_train)) < 2:
                        raise GridError(f"training set {ts.name!r} (seed {s}) has one class "
                                        f"({y_train[0]!r}) for task {task!r}")
                    est = make_probe(p, s, device).fit(X[ts.rows], y_train)
                    test = scored[s]
                    wrong = est.predict(X[test]) != y[test]
                    rows.extend(_error_rows(meta, test, wrong, group_col, base))
            if rows:
                # under the table's lock, cells another process wrote meanwhile are left out
                part = table.append(validate_results(pd.DataFrame(rows)), done="skip")
                if part is not None:
                    written.append(table.read_part(part))
    bar.close()
    return pd.concat(written, ignore_index=True) if written else table.load().iloc[0:0]


def _pooled_all(meta: pd.DataFrame, train: np.ndarray, group_col: str, seed: int, task: str):
    """The single ``all`` training set for SID and group-ID: balanced across groups, and for
    SID the same number of training utterances per speaker."""
    rng = np.random.default_rng(seed + 104729)
    tm = meta.iloc[train]
    key = "speaker" if task == "speaker" else group_col
    counts = tm.groupby(key).size()
    n = int(counts.min())
    picked = np.sort(np.concatenate([rng.choice(train[(tm[key] == k).to_numpy()], size=n, replace=False)
                                     for k in counts.index]))
    return [TrainingSet("all", picked, int(meta["speaker"].iloc[picked].nunique()))]
