"""Extraction: shapes and row counts, values against a direct encode, layer isolation, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from probekit.corpus.model import AudioSource, Corpus
from probekit.errors import CorpusError, StoreError
from probekit.store import EmbeddingStore, extract
from probekit.store.pooling import phone_frame_ranges, phone_means, utterance_mean


def _direct(encoder, corpus, u):
    """One utterance encoded alone and pooled: (layers, frames, hidden), utt, phones."""
    wave, sr = u.load_audio(corpus.root)
    out = encoder.encode([wave], sample_rate=sr, ids=[u.id])
    n = int(out.lengths[0])
    st = out.hidden_states[:, 0, :n].numpy()
    first, stop = phone_frame_ranges([p.start for p in u.phones], [p.end for p in u.phones],
                                     encoder.frame_shift, n)
    return st, utterance_mean(st, n), phone_means(st, first, stop)


def test_shapes_and_row_counts(store32, small_corpus, tiny_encoder):
    s = store32
    assert s.layers == tiny_encoder.layer_names
    assert s.index["rows"]["utterance"] == len(small_corpus)
    assert s.index["rows"]["phone"] == sum(len(u.phones) for u in small_corpus)
    frames = [tiny_encoder.num_frames(len(u.load_audio(small_corpus.root)[0]))
              for u in small_corpus]
    assert s.index["rows"]["frames"] == sum(frames)
    X, meta = s.read("block2", "utterance")
    assert X.shape == (len(small_corpus), tiny_encoder.hidden_size) and X.dtype == np.float32
    assert list(meta["utt_id"]) == [u.id for u in small_corpus]  # corpus order
    assert list(meta["row"]) == list(range(len(small_corpus)))
    X, y, meta = s.load_task(1, "phone")
    assert X.shape[0] == len(y) == len(meta) == s.index["rows"]["phone"]
    assert list(y) == [p.symbol for u in small_corpus for p in u.phones]
    np.testing.assert_allclose(meta["start"], [p.start for u in small_corpus for p in u.phones])
    X, meta = s.read(0, "frames")
    assert list(meta["n_frames"]) == frames
    assert list(meta["offset"]) == list(np.cumsum([0] + frames[:-1]))


def test_tasks(store32, small_corpus):
    X, y, meta = store32.load_task("block3", "group:accent")
    assert list(y) == [u.groups["accent"] for u in small_corpus]
    _, y, _ = store32.load_task("conv", "speaker")
    assert list(y) == [u.speaker for u in small_corpus]
    with pytest.raises(StoreError, match="'dialect'.*accent"):
        store32.load_task(0, "group:dialect")
    with pytest.raises(StoreError, match="unknown task 'words'"):
        store32.load_task(0, "words")
    with pytest.raises(StoreError, match="'block9'.*stored layers"):
        store32.read("block9")


def test_float32_store_equals_direct_encode_exactly(store32, small_corpus, tiny_encoder):
    for idx in (0, 7, 17):
        u = small_corpus[idx]
        st, utt, phones = _direct(tiny_encoder, small_corpus, u)
        X, meta = store32.read("block2", "utterance")
        np.testing.assert_array_equal(X[idx], utt[2])
        X, meta = store32.read("block2", "phone")
        np.testing.assert_array_equal(X[(meta["utt_id"] == u.id).to_numpy()], phones[:, 2])
        X, meta = store32.read("block2", "frames")
        o, n = int(meta["offset"][idx]), int(meta["n_frames"][idx])
        np.testing.assert_array_equal(X[o:o + n], st[2])


def test_float16_batched_store_matches_within_tolerance(store16, small_corpus, tiny_encoder):
    assert store16.index["dtype"] == "float16" and len(store16.shard_paths()) == 4
    Xu, _ = store16.read("block3", "utterance")
    Xp, meta = store16.read("block3", "phone")
    assert Xu.dtype == np.float16
    for idx in (0, 9, 16):
        u = small_corpus[idx]
        _, utt, phones = _direct(tiny_encoder, small_corpus, u)
        np.testing.assert_allclose(Xu[idx].astype(np.float32), utt[3], rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(Xp[(meta["utt_id"] == u.id).to_numpy()].astype(np.float32),
                                   phones[:, 3], rtol=2e-3, atol=2e-3)


def test_reading_a_layer_touches_only_its_files(store32, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(store32.root, root)
    for f in root.glob("shards/*/block1.*.npy"):
        f.unlink()
    s = EmbeddingStore.open(root)
    X, _ = s.read("block2", "phone")
    assert X.shape[0] == s.index["rows"]["phone"]
    with pytest.raises(StoreError, match="block1.phone.npy"):
        s.read("block1", "phone")


def test_layer_subset_writes_only_those_layers(tiny_encoder, small_corpus, tmp_path):
    s = extract(tiny_encoder, small_corpus[:3], tmp_path / "s", layers=["conv", "2"],
                poolings=("utterance",), progress=False)
    assert s.layers == ["conv", "block2"]
    assert sorted(p.name for p in (s.root / "shards" / "00000").glob("*.npy")) == [
        "block2.utterance.npy", "conv.utterance.npy"]
    assert s.read(2, "utterance")[0].shape == (3, tiny_encoder.hidden_size)
    with pytest.raises(StoreError, match="layer 1 \\('block1'\\) is not in the store"):
        s.read(1)


def test_bad_inputs(tiny_encoder, small_corpus, tmp_path):
    with pytest.raises(StoreError, match="unknown layer 'block7'.*conv"):
        extract(tiny_encoder, small_corpus, tmp_path / "a", layers=["block7"], progress=False)
    with pytest.raises(StoreError, match="unknown pooling"):
        extract(tiny_encoder, small_corpus, tmp_path / "a", poolings=("mean",), progress=False)
    unaligned = Corpus([small_corpus[0], small_corpus[1].replace(phones=())],
                       root=small_corpus.root)
    with pytest.raises(StoreError, match=f"utterance {small_corpus[1].id} has none"):
        extract(tiny_encoder, unaligned, tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()  # refused before writing anything
    # Without phone pooling the same corpus is fine.
    extract(tiny_encoder, unaligned, tmp_path / "b", poolings=("utterance",), progress=False)

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    broken = Corpus([small_corpus[0], small_corpus[2].replace(audio=AudioSource(path=str(bad)))],
                    root=small_corpus.root)
    with pytest.raises(CorpusError, match=f"utterance {small_corpus[2].id}"):
        extract(tiny_encoder, broken, tmp_path / "c", progress=False)
    assert not any((tmp_path / "c" / "shards").glob("0*"))  # no half shard committed

    wave, sr = small_corpus[3].load_audio(small_corpus.root)
    short = tmp_path / "short.wav"
    sf.write(short, wave[: sr // 2], sr)
    misaligned = Corpus([small_corpus[3].replace(audio=AudioSource(path=str(short)))],
                        root=small_corpus.root)
    with pytest.raises(StoreError, match=f"utterance {small_corpus[3].id}: phone .* ends at"):
        extract(tiny_encoder, misaligned, tmp_path / "d", progress=False)


def test_default_batch_size_is_the_encoders_choice_for_its_device(tiny_encoder, small_corpus,
                                                                   tmp_path, monkeypatch):
    """``batch_size=None`` (the default) asks the encoder: one utterance per call on a CPU
    (issue 23: batching made wav2vec2-base 17% slower there), 16 on a GPU."""
    assert tiny_encoder.device.type == "cpu" and tiny_encoder.default_batch_size == 1
    sizes = []
    real = type(tiny_encoder).encode

    def spy(self, waveforms, *a, **kw):
        sizes.append(len(waveforms))
        return real(self, waveforms, *a, **kw)

    monkeypatch.setattr(type(tiny_encoder), "encode", spy)
    extract(tiny_encoder, small_corpus[:5], tmp_path / "s", poolings=("utterance",),
            shard_size=5, progress=False)
    assert sizes == [1] * 5
    sizes.clear()
    extract(tiny_encoder, small_corpus[:5], tmp_path / "b", poolings=("utterance",),
            shard_size=5, batch_size=4, progress=False)
    assert sizes == [4, 1]  # an explicit batch size is still obeyed


def test_batch_size_below_one_is_refused(tiny_encoder, small_corpus, tmp_path):
    with pytest.raises(StoreError, match="batch_size must be >= 1, got 0"):
        extract(tiny_encoder, small_corpus[:2], tmp_path / "s", poolings=("utterance",),
                batch_size=0, progress=False)
