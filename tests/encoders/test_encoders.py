"""Encoder interface, registry and every family on tiny random models loaded from disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probekit.encoders import available_encoders, load_encoder
from probekit.encoders.hf_ssl import SSLEncoder
from probekit.encoders.w2v_bert import W2VBertEncoder
from probekit.encoders.whisper import WhisperEncoder
from probekit.errors import EncoderError
from probekit.testing.tiny_models import (SSL_FAMILIES, save_tiny_ssl, save_tiny_w2v_bert,
                                          save_tiny_whisper)

FAMILIES = list(SSL_FAMILIES) + ["whisper", "w2v-bert"]
EXPECTED_CLASS = {"whisper": WhisperEncoder, "w2v-bert": W2VBertEncoder}


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "whisper":
        save_tiny_whisper(folder)
    elif request.param == "w2v-bert":
        save_tiny_w2v_bert(folder)
    else:
        save_tiny_ssl(request.param, folder)
    return request.param, load_encoder(str(folder), device="cpu")


def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    t = [np.arange(n) / 16000 for n in lengths]
    return [(0.3 * np.sin(2 * np.pi * (150 + 40 * i) * tt) + 0.05 * rng.standard_normal(len(tt)))
            .astype(np.float32) for i, tt in enumerate(t)]


def test_registry_routes_every_family_through_from_pretrained(tiny):
    family, enc = tiny
    assert type(enc) is EXPECTED_CLASS.get(family, SSLEncoder)
    assert enc.layer_names == ["conv"] + [f"block{i}" for i in range(1, enc.num_layers + 1)]
    assert enc.num_layers == (2 if family == "whisper" else 3)
    assert enc.frame_shift == pytest.approx(0.02)
    assert enc.sample_rate == 16000
    assert not enc.model.training


def test_available_encoders_lists_families_and_known_names():
    av = available_encoders()
    assert {"whisper", "hf-ssl"} <= set(av)
    assert "whisper-tiny.en" in av["whisper"]


def test_batched_equals_one_at_a_time(tiny):
    """Padding must never change an utterance's states (group-norm front ends included)."""
    _, enc = tiny
    waves = _waves([16000, 7777, 11111, 4001])
    batch = enc.encode(waves)
    for i, w in enumerate(waves):
        single = enc.encode([w])
        assert int(single.lengths[0]) == int(batch.lengths[i])
        torch.testing.assert_close(batch.utterance(i), single.utterance(0), atol=1e-4, rtol=1e-4)
    # frames past each valid length are zero (the shortest utterance has padding)
    shortest = int(batch.lengths.argmin())
    assert batch.lengths[shortest] < batch.hidden_states.shape[2]
    assert batch.hidden_states[:, shortest, int(batch.lengths[shortest]):].abs().max().item() == 0.0


def test_default_batch_size_per_family_and_device(tiny):
    """One utterance per call on a CPU (batches measured no faster there, Whisper's 30 s
    windows included); a batch on a GPU (issue 23)."""
    family, enc = tiny
    cpu = 1
    assert enc.default_batch_size == cpu
    gpu = {"whisper": 8, "w2v-bert": 8}.get(family, 16)
    assert enc.batch_sizes == {"cpu": cpu, "cuda": gpu}
    enc.device = torch.device("cuda")  # what the same family would use on a GPU
    try:
        assert enc.default_batch_size == gpu
    finally:
        enc.device = torch.device("cpu")


def test_one_utterance_is_the_plain_transformers_forward(tmp_path):
    """A batch of one runs the model's own forward (no front-end swap, no mask): the same
    numbers as the bare ``transformers`` call, bit for bit."""
    from transformers import Wav2Vec2Model

    folder = save_tiny_ssl("wav2vec2", tmp_path)
    enc = load_encoder(str(folder), device="cpu")
    (w,) = _waves([12345])
    model = Wav2Vec2Model.from_pretrained(folder).eval()
    x = torch.from_numpy(enc._normalize(w))[None]
    with torch.inference_mode():
        bare = model(x, output_hidden_states=True).hidden_states
    ours = enc.encode([w])
    assert ours.hidden_states.shape[2] == bare[0].shape[1] == int(ours.lengths[0])
    for layer, h in enumerate(bare):
        assert torch.equal(ours.hidden_states[layer, 0], h[0])


def test_padding_would_change_group_norm_models_without_our_front_end(tmp_path):
    """Shows the batch-invariance test can fail: the plain transformers forward on a padded
    batch changes a group-norm wav2vec2's states."""
    from transformers import Wav2Vec2Model

    folder = save_tiny_ssl("wav2vec2", tmp_path)
    model = Wav2Vec2Model.from_pretrained(folder).eval()
    w_short, w_long = (torch.from_numpy(w) for w in _waves([6000, 16000]))
    padded = torch.zeros(2, 16000)
    padded[0, :6000], padded[1] = w_short, w_long
    with torch.no_grad():
        alone = model(w_short[None]).last_hidden_state[0]
        batched = model(padded).last_hidden_state[0, : alone.shape[0]]
    assert (alone - batched).abs().max().item() > 1e-3


MIN_SAMPLES = {"whisper": 1, "w2v-bert": 560}


@pytest.mark.parametrize("n", [399, 400, 401, 1599, 16000, 16001, 23457])
def test_frame_counts_for_odd_lengths(tiny, n):
    family, enc = tiny
    if n < MIN_SAMPLES.get(family, 400):  # shorter than one frame: an error naming it
        with pytest.raises(EncoderError, match="shorter|minimum"):
            enc.encode(_waves([n]), ids=["short"])
        return
    out = enc.encode(_waves([n]))
    assert int(out.lengths[0]) == enc.num_frames(n)
    assert out.hidden_states.shape == (enc.num_layers + 1, 1, enc.num_frames(n), enc.hidden_size)
    if family == "whisper":
        assert enc.num_frames(n) == max(1, -(-(n // 160) // 2))  # 50 frames per second
    elif family == "w2v-bert":  # 25 ms / 10 ms filterbank frames stacked in pairs
        assert enc.num_frames(n) == -(-(1 + (n - 400) // 160) // 2)
    else:  # conv stack without padding: floor((n - 400) / 320) + 1
        assert enc.num_frames(n) == (n - 400) // 320 + 1


def test_resampling_int16_and_stereo_are_documented_conversions(tiny):
    _, enc = tiny
    w = _waves([16000])[0]
    ref = enc.encode([w]).utterance(0)
    # int16 PCM is scaled by 1/2**15
    pcm = np.round(w * 2**15).astype(np.int16)
    torch.testing.assert_close(enc.encode([pcm]).utterance(0), ref, atol=5e-3, rtol=5e-3)
    # identical stereo channels average to the mono signal, in either axis order
    torch.testing.assert_close(enc.encode([np.stack([w, w])]).utterance(0), ref)
    torch.testing.assert_close(enc.encode([np.stack([w, w], axis=1)]).utterance(0), ref)
    # 8 kHz input is resampled to 16 kHz: the same number of frames per second
    w8 = w[::2].copy()
    out8 = enc.encode([w8], sample_rate=8000)
    assert int(out8.lengths[0]) == enc.num_frames(16000)


@pytest.mark.parametrize("bad, match", [
    (np.zeros(0, dtype=np.float32), "empty"),
    (np.array([0.0, np.nan] * 4000, dtype=np.float32), "non-finite"),
    (np.zeros((3, 3, 3), dtype=np.float32), "1-D"),
    (np.zeros(8000, dtype=np.uint8), "integer"),
    (np.zeros((20, 8000), dtype=np.float32), "channels"),
])
def test_bad_inputs_name_the_utterance(tiny, bad, match):
    _, enc = tiny
    with pytest.raises(EncoderError, match=match) as exc:
        enc.encode([_waves([8000])[0], bad], ids=["good-utt", "bad-utt"])
    assert "bad-utt" in str(exc.value)


def test_whisper_over_30_s_is_an_error_or_windowed(tmp_path):
    folder = save_tiny_whisper(tmp_path)
    enc = load_encoder(str(folder), device="cpu")
    long = _waves([16000 * 31])[0]
    with pytest.raises(EncoderError, match="utt-long.*30 s"):
        enc.encode([long], ids=["utt-long"])
    win = load_encoder(str(folder), device="cpu", long_form="window")
    out = win.encode([long, _waves([16000])[0]])
    assert out.lengths.tolist() == [1500 + 50, 50]
    # the first window equals encoding the first 30 s alone
    first = win.encode([long[: 16000 * 30]]).utterance(0)
    torch.testing.assert_close(out.utterance(0)[:, :1500], first)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_ctc_checkpoint_loads_its_encoder(tmp_path, family):
    """ASR fine-tuned checkpoints (…ForCTC) give the same encoder as their base weights."""
    folder = save_tiny_ssl(family, tmp_path / "ctc", ctc=True)
    enc = load_encoder(str(folder), device="cpu")
    import transformers

    ctc_cls = getattr(transformers, SSL_FAMILIES[family][2])
    ctc = ctc_cls.from_pretrained(folder).eval()
    w = _waves([16000])[0]
    with torch.no_grad():
        ref = ctc.base_model(torch.from_numpy((w - w.mean()) / np.sqrt(w.var() + 1e-7))[None],
                             output_hidden_states=True).hidden_states
    got = enc.encode([w])
    for layer in range(enc.num_layers + 1):
        torch.testing.assert_close(got.layer(layer)[0], ref[layer][0], atol=1e-5, rtol=1e-5)


def test_unknown_encoder_and_layer_errors(tmp_path, tiny):
    _, enc = tiny
    with pytest.raises(EncoderError, match="config.json"):
        load_encoder(str(tmp_path))
    out = enc.encode(_waves([8000]))
    with pytest.raises(EncoderError, match="block99"):
        out.layer("block99")


def test_half_precision_needs_cuda(tmp_path):
    folder = save_tiny_ssl("wav2vec2", tmp_path)
    with pytest.raises(EncoderError, match="CUDA"):
        load_encoder(str(folder), device="cpu", dtype="float16")


def test_fingerprint_identifies_weights_not_folders(tmp_path):
    a = load_encoder(str(save_tiny_ssl("hubert", tmp_path / "a", seed=0)), device="cpu")
    b = load_encoder(str(save_tiny_ssl("hubert", tmp_path / "b", seed=1)), device="cpu")
    c = load_encoder(str(save_tiny_ssl("hubert", tmp_path / "c", seed=0)), device="cpu")
    assert a.fingerprint == c.fingerprint
    assert a.fingerprint != b.fingerprint


def test_real_whisper_tiny_en_layers_and_batching(whisper_tiny_en):
    """The packaged real model: 4 blocks of width 384, 50 frames/s, batch-invariant."""
    from probekit.corpus.espeak import synthesize

    enc = whisper_tiny_en
    assert (enc.num_layers, enc.hidden_size, enc.frame_shift) == (4, 384, 0.02)
    clips = [synthesize(t, voice=v) for t, v in [("The birch canoe slid on the smooth planks.", "en-us"),
                                                 ("Glue the sheet to the dark blue background.", "es")]]
    waves = [c.samples for c in clips]
    batch = enc.encode(waves, sample_rate=clips[0].sample_rate)
    for i, w in enumerate(waves):
        assert int(batch.lengths[i]) == -(-(len(w) // 160) // 2)
        single = enc.encode([w]).utterance(0)
        torch.testing.assert_close(batch.utterance(i), single, atol=1e-4, rtol=1e-4)
    # layers differ from each other (a copy-the-same-layer bug would pass the shape checks)
    h = batch.utterance(0)
    assert all((h[k] - h[k + 1]).abs().mean() > 1e-2 for k in range(enc.num_layers))
