"""Extraction: run an encoder over a corpus and write pooled hidden states to a store.

The corpus is cut into a fixed partition of shards of ``shard_size`` utterances in corpus
order. The partition depends on nothing else (not on the number of processes, nor on batch
sizes), so any number of ranks, and any number of restarts, produce the same shard files.
Within a shard, utterances are batched in order of length (less padding), and rows are
written back in corpus order.

Only one shard is held in memory at a time, so peak memory is bounded by ``shard_size``, not
by the corpus.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from probekit.errors import StoreError
from probekit.store import distributed
from probekit.store.integrity import (SHARD_INFO, StoreIndexError, read_index,
                                      read_shard_info, set_aside_damaged, shard_files)
from probekit.store.pooling import phone_frame_ranges, phone_means, utterance_mean
from probekit.store.store import (FINGERPRINT_NAME, FORMAT_VERSION, INDEX_NAME, POOLINGS,
                                  SHARDS_DIR, EmbeddingStore, corpus_hash, fingerprint_diff,
                                  fingerprint_key, shard_name, write_json_atomic)

__all__ = ["extract", "resolve_layers", "store_fingerprint", "DTYPES"]

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


def _batches(lengths: list[float], batch_size: int, max_batch_seconds: float | None):
    """Index batches in order of length; a batch's padded seconds stay under the cap."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batch: list[int] = []
    for i in order:
        # Sorted ascending, so the newest item is the longest: padded cost = len * count.
        too_long = (max_batch_seconds is not None and batch
                    and lengths[i] * (len(batch) + 1) > max_batch_seconds)
        if batch and (len(batch) >= batch_size or too_long):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def _write_shard(encoder, corpus, index: int, utts, root: Path, layer_idx, poolings, dtype,
                 attributes, batch_size, max_batch_seconds, pbar) -> None:
    shards = root / SHARDS_DIR
    name = shard_name(index)
    for stale in shards.glob(f".tmp-{name}-*"):  # left by a killed run; this rank owns `name`
        shutil.rmtree(stale, ignore_errors=True)
    tmp = shards / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()

    audio = [u.load_audio(corpus.root) for _, u in utts]  # CorpusError names the utterance
    seconds = [len(w) / sr for w, sr in audio]
    layer_names = [encoder.layer_names[i] for i in layer_idx]
    all_layers = layer_idx == list(range(len(encoder.layer_names)))
    np_dtype = np.dtype(dtype)
    pooled: dict[str, list] = {p: [None] * len(utts) for p in poolings}
    n_frames = [0] * len(utts)
    ranges: list = [None] * len(utts)
    for batch in _batches(seconds, batch_size, max_batch_seconds):
        out = encoder.encode([audio[i][0] for i in batch],
                             sample_rate=[audio[i][1] for i in batch],
                             ids=[utts[i][1].id for i in batch])
        states = out.hidden_states if all_layers else out.hidden_states[layer_idx]
        states = states.numpy()  # (layers, batch, frames, hidden), float32
        for b, i in enumerate(batch):
            u, n = utts[i][1], int(out.lengths[b])
            st = states[:, b, :n]
            n_frames[i] = n
            if "utterance" in pooled:
                pooled["utterance"][i] = utterance_mean(st, n).astype(np_dtype)
            if "phone" in pooled:
                first, stop = phone_frame_ranges(
                    [p.start for p in u.phones], [p.end for p in u.phones], out.frame_shift, n,
                    utt_id=u.id, symbols=[p.symbol for p in u.phones])
                ranges[i] = (first, stop)
                pooled["phone"][i] = phone_means(st, first, stop).astype(np_dtype)
            if "frames" in pooled:
                pooled["frames"][i] = np.moveaxis(st, 0, 1).astype(np_dtype)  # (n, layers, H)
        if pbar is not None:
            pbar.update(len(batch))

    rows: dict[str, int] = {}
    for pooling, parts in pooled.items():
        if pooling == "utterance":
            arr = np.stack(parts)  # (utts, layers, hidden)
        else:
            arr = np.concatenate(parts, axis=0)  # (rows, layers, hidden)
        rows[pooling] = int(arr.shape[0])
        for j, lname in enumerate(layer_names):
            _save_npy(tmp / f"{lname}.{pooling}.npy", np.ascontiguousarray(arr[:, j]))
        del arr
        _meta(pooling, utts, attributes, seconds, n_frames, ranges).to_csv(
            tmp / f"{pooling}.csv", index=False)
    # sizes and checksums at commit time: opening checks sizes, `store verify` checksums
    info = {"name": name, "utterances": len(utts), "rows": rows,
            "audio_seconds": round(float(sum(seconds)), 6), "files": shard_files(tmp)}
    (tmp / SHARD_INFO).write_text(json.dumps(info, sort_keys=True) + "\n")
    # The rename is the commit point: a shard folder that exists is complete.
    os.replace(tmp, shards / name)


def _meta(pooling, utts, attributes, seconds, n_frames, ranges):
    import pandas as pd

    from probekit.text import sentence_key

    records = []
    offset = 0
    for i, (corpus_index, u) in enumerate(utts):
        # a corpus built in memory may lack ids: the transcript key, as every reader sets it
        sid = u.sentence_id or (sentence_key(u.text) if u.text.strip() else None)
        base = {"corpus_index": corpus_index, "utt_id": u.id, "speaker": u.speaker,
                "sentence_id": sid or ""}
        base.update({f"group:{a}": u.groups.get(a, "") for a in attributes})
        if pooling == "utterance":
            records.append({**base, "duration": round(seconds[i], 6), "n_frames": n_frames[i]})
        elif pooling == "frames":
            records.append({**base, "offset": offset, "n_frames": n_frames[i]})
            offset += n_frames[i]
        else:
            first, stop = ranges[i]
            for k, p in enumerate(u.phones):
                records.append({**base, "phone_index": k, "phone": p.symbol, "start": p.start,
                                "end": p.end, "frame_start": int(first[k]),
                                "frame_stop": int(stop[k])})
    df = pd.DataFrame.from_records(records)
    df.insert(0, "row", np.arange(len(df), dtype=np.int64))
    return df


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
            shard_size: int = 64, batch_size: int = 8, max_batch_seconds: float | None = None,
            rank: int | None = None, world_size: int | None = None, overwrite: bool = False,
            progress: bool = True) -> EmbeddingStore | None:
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
    batch_size : int
        Utterances per encoder call.
    max_batch_seconds : float, optional
        Also cap a batch's padded audio (longest utterance x count) in seconds.
    rank, world_size : int, optional
        This process's share: shards with ``index % world_size == rank``. Default: the
        torch.distributed process group, else ``RANK``/``WORLD_SIZE``, else 0 and 1.
    overwrite : bool
        Delete an existing store in ``out_dir`` instead of refusing a mismatch.
    progress : bool
        Show a tqdm progress bar (with ETA).

    Returns
    -------
    EmbeddingStore or None
        ``None`` only on a rank of a multi-process run *without* a process group whose peers
        have not finished yet; rerun with one process afterwards to write the index (this
        recomputes nothing).

    Raises
    ------
    StoreError
        Fingerprint mismatch (naming what changed), unknown layer or pooling, an utterance
        without phones for phone pooling, a phone past the end of its audio.
    CorpusError
        Unreadable audio (naming the utterance).
    LockHeldError
        When another process is extracting the same rank into ``out_dir`` (naming it; a
        killed one's lock is taken over). Different ranks never wait for each other.
    """
    from probekit.locks import folder_lock
    kw = dict(layers=layers, poolings=poolings, dtype=dtype, shard_size=shard_size,
              batch_size=batch_size, max_batch_seconds=max_batch_seconds, rank=rank,
              world_size=world_size, overwrite=overwrite, progress=progress)
    r, w = distributed.rank_and_world(rank, world_size)
    with folder_lock(out_dir, name=f"extract-{r}-of-{w}", what="store", wait=False):
        return _extract(encoder, corpus, out_dir, **kw)


def _extract(encoder, corpus, out_dir, *, layers, poolings, dtype, shard_size, batch_size,
             max_batch_seconds, rank, world_size, overwrite, progress):
    import torch

    poolings = _check_inputs(corpus, poolings, dtype, shard_size)
    layer_idx = resolve_layers(encoder, layers)
    rank, world_size = distributed.rank_and_world(rank, world_size)
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
        return EmbeddingStore.open(root)

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
        return None
    return EmbeddingStore.open(root)
