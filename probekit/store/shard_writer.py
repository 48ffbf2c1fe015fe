"""Writing one shard of a store: batching by length, encoding, pooling, atomic commit.

:func:`probekit.store.extract` cuts the corpus into shards and calls :func:`_write_shard`
for each one it owns. A shard is written into a temporary folder (arrays fsynced, metadata
CSVs, ``shard.json`` with sizes and checksums) and committed by one rename, so a shard
folder that exists is complete. Utterances are batched in order of length (less padding);
rows are written back in corpus order.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from probekit.store.integrity import SHARD_INFO, shard_files
from probekit.store.pooling import phone_frame_ranges, phone_means, utterance_mean
from probekit.store.store import SHARDS_DIR, shard_name

__all__ = ["length_batches"]


def length_batches(lengths: list[float], batch_size: int, max_batch_seconds: float | None):
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
    for batch in length_batches(seconds, batch_size, max_batch_seconds):
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
