"""A real on-disk ``frames`` store written without an encoder (random, never a finding).

:func:`write_frames_store` writes the files :func:`probekit.store.extract` would (shards,
metadata CSVs, ``shard.json`` with sizes and checksums, ``store.json``), one shard at a time,
so a store larger than memory can be written. Each utterance's transcript is random words
over a small alphabet; each character is a run of frames around that character's centroid
plus a speaker and a group offset, so a CTC probe can learn it. For the CTC memory test and
``benchmarks/ctc_memory.py`` (issue 23 item 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["write_frames_store"]

_ALPHABET = "abcdefghij"


def write_frames_store(root, *, n_utterances: int, hidden: int = 64, n_layers: int = 1,
                       n_groups: int = 4, speakers_per_group: int = 4, words: tuple = (2, 4),
                       frames_per_char: int = 3, shard_size: int = 64, dtype: str = "float16",
                       random_state: int = 0):
    """Write a ``frames`` store of ``n_utterances`` in ``root``; returns ``(store, texts)``.

    ``texts`` maps ``utt_id -> transcript`` (pass it as ``corpus=`` to
    :func:`~probekit.probes.grid.run_grid` for the ``asr`` task). Speakers ``g<i>_s<j>`` take
    utterances in turn; every utterance has a distinct sentence id.
    """
    from probekit.store.integrity import SHARD_INFO, shard_files
    from probekit.store.store import INDEX_NAME, SHARDS_DIR, EmbeddingStore, shard_name

    root = Path(root)
    (root / SHARDS_DIR).mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(random_state)
    cent = rng.normal(0, 1.0, size=(len(_ALPHABET) + 1, hidden))  # last: the space
    groups = [f"g{i}" for i in range(n_groups)]
    speakers = [(f"{g}_s{j}", g) for g in groups for j in range(speakers_per_group)]
    spk_off = {s: rng.normal(0, 0.3, hidden) for s, _ in speakers}
    grp_off = {g: rng.normal(0, 0.3, hidden) for g in groups}
    layers = [f"block{i}" for i in range(n_layers)]
    texts, shards, total = {}, [], 0
    for k, a in enumerate(range(0, n_utterances, shard_size)):
        utts = range(a, min(a + shard_size, n_utterances))
        parts = {name: [] for name in layers}
        records, offset = [], 0
        for i in utts:
            spk, g = speakers[i % len(speakers)]
            text = " ".join("".join(rng.choice(list(_ALPHABET), size=rng.integers(2, 6)))
                            for _ in range(int(rng.integers(words[0], words[1] + 1))))
            uid = f"{spk}_u{i:06d}"
            texts[uid] = text
            idx = np.repeat([_ALPHABET.index(c) if c != " " else len(_ALPHABET) for c in text],
                            frames_per_char)
            base = cent[idx] + spk_off[spk] + grp_off[g]
            for li, name in enumerate(layers):
                noise = rng.normal(0, 0.5 * (1 + li), size=base.shape)
                parts[name].append((base + noise).astype(dtype))
            records.append({"corpus_index": i, "utt_id": uid, "speaker": spk,
                            "sentence_id": f"sent{i:06d}", "offset": offset,
                            "n_frames": len(idx), "group:accent": g})
            offset += len(idx)
        folder = root / SHARDS_DIR / shard_name(k)
        folder.mkdir()
        for name in layers:
            np.save(folder / f"{name}.frames.npy", np.concatenate(parts[name]))
        meta = pd.DataFrame.from_records(records)
        meta.insert(0, "row", np.arange(len(meta), dtype=np.int64))
        meta.to_csv(folder / "frames.csv", index=False)
        info = {"name": shard_name(k), "utterances": len(utts), "rows": {"frames": offset},
                "audio_seconds": 0.0, "files": shard_files(folder)}
        (folder / SHARD_INFO).write_text(json.dumps(info, sort_keys=True) + "\n")
        shards.append(info)
        total += offset
    index = {"encoder_layer_names": layers, "layers": layers, "hidden_size": int(hidden),
             "poolings": ["frames"], "dtype": dtype, "frame_shift": 0.02, "sample_rate": 16000,
             "attributes": ["accent"], "shards": shards, "rows": {"frames": total},
             "audio_seconds": 0.0,
             "fingerprint": {"encoder": "synthetic-frames", "seed": int(random_state),
                             "n_utterances": int(n_utterances), "hidden": int(hidden)}}
    (root / INDEX_NAME).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return EmbeddingStore.open(root), texts
