"""Extraction: run an encoder over a corpus and write pooled hidden states to a store.

The corpus is cut into a fixed partition of shards of ``shard_size`` utterances in corpus
order. The partition depends on nothing else (not on the number of processes, nor on batch
sizes), so any number of ranks, and any number of restarts, produce the same shard files.
Within a shard, utterances are batched in order of length (less padding), and rows are
written back in corpus order.

Only one shard is held in memory at a time, so peak memory is bounded by ``shard_size``, not
by the corpus. Writing one shard (batching, encoding, pooling, the atomic commit) lives in
:mod:`probekit.store.shard_writer`; this module checks inputs, fingerprints, resumes,
distributes shards over ranks and writes the index.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

from probekit.errors import StoreError
from probekit import distributed
from probekit.store.integrity import (StoreIndexError, read_index, read_shard_info,
                                      set_aside_damaged)
from probekit.store.shard_writer import _write_shard
from probekit.store.store import (FINGERPRINT_NAME, FORMAT_VERSION, INDEX_NAME, POOLINGS,
                                  SHARDS_DIR, EmbeddingStore, corpus_hash, fingerprint_diff,
                                  fingerprint_key, shard_name, write_json_atomic)

__all__ = ["extract", "extract_shards", "resolve_layers", "store_fingerprint", "DTYPES"]

log = logging.getLogger(__name__)

DTYPES = ("float16", "float32")


def resolve_layers(encoder, layers: Sequence[int | str] | None) -> list[int]:
    """Encoder layer indices for ``layers`` (names like ``"block2"`` or indices; ``None``: all)."""
    names = list(encoder.layer_names)
    if layers is None:
        return list(range(len(names)))
    out = set()
    for item in layers:
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, str):
            if item.strip() not in names:
                raise StoreError(f"unknown layer {item!r}; {encoder.name} has layers {names}")
            out.add(names.index(item.strip()))
        else:
            if not -len(names) <= int(item) < len(names):
                raise StoreError(f"layer index {item} out of range; {encoder.name} has "
                                 f"{len(names)} layers {names}")
            out.add(int(item) % len(names))
    if not out:
        raise StoreError("no layers selected")
    return sorted(out)


def store_fingerprint(encoder, corpus, layer_idx, poolings, dtype, shard_size) -> dict:
    """What a store's contents depend on; a restart with any difference is refused."""
    from probekit import __version__

    return {
        "encoder": encoder.name,
        "encoder_weights": encoder.fingerprint,
        "corpus": corpus_hash(corpus),
        "utterances": len(corpus),
        "layers": [encoder.layer_names[i] for i in layer_idx],
        "poolings": list(poolings),
        "dtype": dtype,
        "shard_size": int(shard_size),
        "format": FORMAT_VERSION,
        "probekit": __version__,
    }


def _check_inputs(corpus, poolings, dtype, shard_size) -> list[str]:
    unknown = [p for p in poolings if p not in POOLINGS]
    if unknown or not poolings:
        raise StoreError(f"unknown pooling(s) {unknown or poolings}; choose from {POOLINGS}")
    if dtype not in DTYPES:
        raise StoreError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if int(shard_size) < 1:
        raise StoreError(f"shard_size must be >= 1, got {shard_size}")
    if len(corpus) == 0:
        raise StoreError("the corpus is empty")
    if "phone" in poolings:
        missing = [u.id for u in corpus if not u.phones]
        if missing:
            raise StoreError(
                f"phone pooling needs phone alignments; utterance {missing[0]} has none "
                f"({len(missing)} of {len(corpus)} utterances lack them: align the corpus or "
                "drop 'phone' from the poolings)")
    # Canonical order, so ("phone", "utterance") and ("utterance", "phone") are one config.
    return [p for p in POOLINGS if p in poolings]


def _prepare(root: Path, fp: dict, overwrite: bool, rank: int, inputs: tuple = ()) -> bool:
    """Check or write the fingerprint; returns True when the store is already finished."""
    fp_path = root / FINGERPRINT_NAME
    if rank == 0 or not distributed.is_initialized():
        from probekit.outdir import OutputFolderError, claim_output

        try:  # a folder probekit did not stamp as a store is refused, --overwrite or not
            claim_output(root, "store", fresh=overwrite, command="extract", inputs=inputs,
                         fingerprint=fingerprint_key(fp),
                         contents=[FINGERPRINT_NAME, INDEX_NAME, SHARDS_DIR])
        except OutputFolderError as exc:
            raise StoreError(str(exc)) from None
        if not fp_path.exists():
            if (root / SHARDS_DIR).exists():
                raise StoreError(f"{root} has shards but no {FINGERPRINT_NAME}; pass "
                                 "overwrite=True (--overwrite) to start afresh")
            write_json_atomic(fp_path, fp)  # before any shard: a restart can check it
    distributed.barrier()
    try:
        old = json.loads(fp_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{fp_path}: unreadable ({type(exc).__name__}); the store cannot be "
                         "resumed: pass overwrite=True (--overwrite) to start afresh") from None
    if not isinstance(old, dict):
        raise StoreError(f"{fp_path}: expected a JSON object, found {type(old).__name__}; pass "
                         "overwrite=True (--overwrite) to start afresh")
    diff = fingerprint_diff(old, fp)
    if diff:
        raise StoreError(
            f"the store in {root} was computed from something else; changed: "
            + "; ".join(diff) + ". Use another folder or overwrite=True (--overwrite)")
    (root / SHARDS_DIR).mkdir(exist_ok=True)
    return (root / INDEX_NAME).exists()


def _write_index(root: Path, encoder, fp: dict, layer_idx, poolings, dtype, attributes,
                 n_shards: int) -> None:
    shards, totals, seconds = [], {p: 0 for p in poolings}, 0.0
    for i in range(n_shards):
        info = read_shard_info(root / SHARDS_DIR / shard_name(i))
        shards.append(info)
        seconds += info["audio_seconds"]
        for p in poolings:
            totals[p] += info["rows"][p]
    index = {
        "encoder_layer_names": list(encoder.layer_names),
        "layers": [encoder.layer_names[i] for i in layer_idx],
        "hidden_size": int(encoder.hidden_size),
        "poolings": list(poolings),
        "dtype": dtype,
        "frame_shift": float(encoder.frame_shift),
        "sample_rate": int(encoder.sample_rate),
        "attributes": list(attributes),
        "shards": shards,
        "rows": totals,
        "audio_seconds": round(seconds, 6),
        "fingerprint": fp,
    }
    write_json_atomic(root / INDEX_NAME, index)


def extract(encoder, corpus, out_dir, *, layers: Sequence[int | str] | None = None,
            poolings: Sequence[str] = ("utterance", "phone"), dtype: str = "float16",
            shard_size: int = 64, batch_size: int | None = None,
            max_batch_seconds: float | None = None,
            rank: int | None = None, world_size: int | None = None, overwrite: bool = False,
            progress: bool = True) -> EmbeddingStore:
    """Encode ``corpus`` with ``encoder`` and write pooled hidden states to ``out_dir``.

    Resumable and idempotent: finished shards are kept, a finished store is returned as is,
    and a store computed from anything else (see :func:`store_fingerprint`) is refused.
    Finished shards are first checked against the sizes and checksums recorded when they were
    written (:mod:`probekit.store.integrity`): only damaged ones are extracted again, and an
    unreadable ``store.json`` is written again from the shards' records.

    Parameters
    ----------
    encoder : probekit.encoders.Encoder
        Runs on its own device (choose it when loading the encoder).
    corpus : probekit.corpus.Corpus
    out_dir : path
        The store folder (created).
    layers : sequence of int or str, optional
        Encoder layers by index (0 = ``"conv"``) or name; ``None``: every layer.
    poolings : sequence of ``"utterance"``, ``"phone"``, ``"frames"``
        ``"phone"`` needs phone alignments on every utterance.
    dtype : ``"float16"`` or ``"float32"``
        Storage precision (pooling itself runs in float64/float32).
    shard_size : int
        Utterances per shard: the unit of atomic writes, resumption and work distribution.
        Memory is bounded by one shard's pooled outputs.
    batch_size : int, optional
        Utterances per encoder call (length-sorted within a shard). ``None``: the encoder's
        choice for its family and device (``encoder.default_batch_size``: 1 on a CPU, 8
        for Whisper and 16 for SSL models on a GPU). Batching never changes the stored
        values beyond float tolerance.
    max_batch_seconds : float, optional
        Also cap a batch's padded audio (longest utterance x count) in seconds.
    rank, world_size : int, optional
        This process's share: shards with ``index % world_size == rank``. Default: the
        torch.distributed process group, else ``RANK``/``WORLD_SIZE``, else 0 and 1. Several
        ranks need a process group (its barriers let rank 0 write the index once every rank
        is done); ranks without one call :func:`extract_shards`.
    overwrite : bool
        Delete an existing store in ``out_dir`` instead of refusing a mismatch.
    progress : bool
        Show a tqdm progress bar (with ETA).

    Returns
    -------
    EmbeddingStore
        Always the finished store (on every rank).

    Raises
    ------
    StoreError
        Fingerprint mismatch (naming what changed), unknown layer or pooling, an utterance
        without phones for phone pooling, a phone past the end of its audio; several ranks
        without a process group (use :func:`extract_shards`).
    CorpusError
        Unreadable audio (naming the utterance).
    LockHeldError
        When another process is extracting the same rank into ``out_dir`` (naming it; a
        killed one's lock is taken over). Different ranks never wait for each other.
    """
    r, w = distributed.rank_and_world(rank, world_size)
    if w > 1 and not distributed.is_initialized():
        raise StoreError(
            f"extract as rank {r} of {w} without a torch.distributed process group: no rank "
            "can wait for the others, so none can return the finished store. Call "
            "extract_shards(...) on each rank (it returns the shards it wrote), then extract(...) "
            "with one process to write the index (it recomputes nothing); or launch with torchrun")
    _, store = _locked(encoder, corpus, out_dir, layers=layers, poolings=poolings, dtype=dtype,
                       shard_size=shard_size, batch_size=batch_size,
                       max_batch_seconds=max_batch_seconds, rank=r, world_size=w,
                       overwrite=overwrite, progress=progress)
    return store  # one rank, or a process group: every shard is finished here


def extract_shards(encoder, corpus, out_dir, *, layers: Sequence[int | str] | None = None,
                   poolings: Sequence[str] = ("utterance", "phone"), dtype: str = "float16",
                   shard_size: int = 64, batch_size: int | None = None,
                   max_batch_seconds: float | None = None, rank: int | None = None,
                   world_size: int | None = None, overwrite: bool = False,
                   progress: bool = True) -> list[Path]:
    """One rank's share of an extraction run *without* a process group (e.g. a SLURM array).

    Writes the shards ``index % world_size == rank`` that are missing or damaged, exactly as
    :func:`extract` would (same arguments, same files), and nothing else a peer could be
    writing. Whichever rank finds every shard finished also writes the index; otherwise run
    :func:`extract` with one process afterwards to write it (this recomputes nothing).

    Returns
    -------
    list of Path
        The shard folders this call wrote (empty when its shards were already finished).

    Raises
    ------
    StoreError
        As :func:`extract`; also when a process group is initialised (call :func:`extract`,
        which returns the finished store on every rank).
    """
    if distributed.is_initialized():
        raise StoreError("a torch.distributed process group is initialised: call extract(...), "
                         "which waits for every rank and returns the finished store")
    r, w = distributed.rank_and_world(rank, world_size)
    written, _ = _locked(encoder, corpus, out_dir, layers=layers, poolings=poolings, dtype=dtype,
                         shard_size=shard_size, batch_size=batch_size,
                         max_batch_seconds=max_batch_seconds, rank=r, world_size=w,
                         overwrite=overwrite, progress=progress)
    return written


def _locked(encoder, corpus, out_dir, *, rank, world_size, **kw):
    from probekit.locks import folder_lock

    with folder_lock(out_dir, name=f"extract-{rank}-of-{world_size}", what="store", wait=False):
        return _extract(encoder, corpus, out_dir, rank=rank, world_size=world_size, **kw)


def _extract(encoder, corpus, out_dir, *, layers, poolings, dtype, shard_size, batch_size,
             max_batch_seconds, rank, world_size, overwrite, progress
             ) -> tuple[list[Path], EmbeddingStore | None]:
    """Write this rank's missing shards (and the index when every shard is finished).

    Returns the shard folders written and the store when it is finished, else ``None``."""
    import torch

    poolings = _check_inputs(corpus, poolings, dtype, shard_size)
    if batch_size is None:
        batch_size = encoder.default_batch_size
    elif int(batch_size) < 1:
        raise StoreError(f"batch_size must be >= 1, got {batch_size}")
    layer_idx = resolve_layers(encoder, layers)
    if not 0 <= rank < world_size:
        raise StoreError(f"rank {rank} is outside world size {world_size}")
    root = Path(out_dir)
    fp = store_fingerprint(encoder, corpus, layer_idx, poolings, dtype, shard_size)
    finished = _prepare(root, fp, overwrite, rank, inputs=(getattr(corpus, "root", None),))
    n_shards = math.ceil(len(corpus) / shard_size)
    index = None
    if finished:  # an unreadable index is written again from the shards' own records
        try:
            index = read_index(root / INDEX_NAME)
        except StoreIndexError as exc:
            log.warning("%s; writing the index again from the shards", exc)
    mine = [shard_name(i) for i in range(rank, n_shards, world_size)]
    damaged = set_aside_damaged(root, [n for n in mine if index is not None
                                       or (root / SHARDS_DIR / n).exists()], index)
    if index is not None and not damaged and not distributed.is_initialized():
        return [], EmbeddingStore.open(root)

    attributes = corpus.attributes
    todo = [i for i in range(rank, n_shards, world_size)
            if not (root / SHARDS_DIR / shard_name(i)).exists()]
    n_todo = sum(len(range(i * shard_size, min(len(corpus), (i + 1) * shard_size))) for i in todo)
    pbar = None
    if progress:
        from tqdm.auto import tqdm

        pbar = tqdm(total=n_todo, unit="utt", desc=f"extract[{rank}/{world_size}]",
                    position=rank, dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for i in todo:
                lo, hi = i * shard_size, min(len(corpus), (i + 1) * shard_size)
                utts = [(k, corpus[k]) for k in range(lo, hi)]
                _write_shard(encoder, corpus, i, utts, root, layer_idx, poolings, dtype,
                             attributes, batch_size, max_batch_seconds, pbar)
    finally:
        if pbar is not None:
            pbar.close()

    written = [root / SHARDS_DIR / shard_name(i) for i in todo]
    done = lambda: all((root / SHARDS_DIR / shard_name(i)).exists() for i in range(n_shards))  # noqa: E731
    if distributed.is_initialized():
        distributed.barrier()
        if rank == 0:
            _write_index(root, encoder, fp, layer_idx, poolings, dtype, attributes, n_shards)
        distributed.barrier()
    elif done():
        # Without a process group, whichever rank sees every shard finished writes the index;
        # its content is identical from any rank and the write is atomic.
        _write_index(root, encoder, fp, layer_idx, poolings, dtype, attributes, n_shards)
    else:
        log.info("rank %d finished; waiting for other ranks' shards before writing the index",
                 rank)
        return written, None
    return written, EmbeddingStore.open(root)
