"""The encoder-family registry's contract (issue 22, item 10): every registered family,
iterated from the registry itself, on a tiny random model of its own, keeps the layer and
length contract and the family protocol (``known_names``/``handles``/``from_name``
classmethods of :class:`~probekit.encoders.Encoder`). A family registered without a tiny
model here fails the test by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probekit.encoders import Encoder, available_encoders, load_encoder, register_encoder
from probekit.encoders.base import layer_names_for
from probekit.encoders.registry import _FAMILIES, resolve_family
from probekit.errors import EncoderError
from probekit.registry import RegistryError
from probekit.testing.tiny_models import save_tiny_ssl, save_tiny_w2v_bert, save_tiny_whisper

#: One tiny model writer per family: ``writer(folder)``.
TINY = {"whisper": save_tiny_whisper, "hf-ssl": lambda folder: save_tiny_ssl("wav2vec2", folder),
        "w2v-bert": save_tiny_w2v_bert}


@pytest.fixture(scope="module", params=list(available_encoders()))
def family_encoder(request, tmp_path_factory):
    family = request.param
    assert family in TINY, f"encoder family {family!r} is registered but has no tiny model here"
    folder = tmp_path_factory.mktemp(family)
    TINY[family](folder)
    return family, load_encoder(str(folder), device="cpu")


def _waves(lengths):
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def test_layer_and_length_contract(family_encoder):
    family, enc = family_encoder
    assert type(enc) is _FAMILIES[family] and enc.family == family
    assert enc.layer_names == layer_names_for(enc.num_layers)
    lengths = [16000, 9001, 12345]
    out = enc.encode(_waves(lengths))
    frames = [enc.num_frames(n) for n in lengths]
    assert out.layer_names == enc.layer_names and out.frame_shift == enc.frame_shift
    assert out.hidden_states.shape == (enc.num_layers + 1, 3, max(frames), enc.hidden_size)
    assert out.hidden_states.dtype == torch.float32
    assert out.lengths.tolist() == frames
    for i, f in enumerate(frames):          # zeros past each valid length
        assert not out.hidden_states[:, i, f:].any()
    alone = enc.encode(_waves(lengths)[1:2])  # batching changes no utterance's states
    torch.testing.assert_close(alone.utterance(0), out.utterance(1), atol=1e-4, rtol=1e-4)
    assert enc.frame_shift > 0 and enc.sample_rate > 0


def test_family_protocol(family_encoder):
    family, _ = family_encoder
    cls = _FAMILIES[family]
    assert cls.from_name.__func__ is not Encoder.from_name.__func__, \
        f"family {family!r} does not override Encoder.from_name"
    names = cls.known_names()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    assert available_encoders()[family] == names
    for name in names:                    # a known name is routed without reading a config
        assert cls.handles(name) and resolve_family(name) == family


class _Bare(Encoder):
    sample_rate, frame_shift = 16000, 0.02

    def num_frames(self, num_samples):
        return num_samples // 320

    def _forward(self, waves, names):
        raise NotImplementedError


def test_protocol_defaults():
    assert _Bare.known_names() == [] and not _Bare.handles("anything")
    with pytest.raises(EncoderError, match="does not load models by name"):
        _Bare.from_name("anything")


def test_a_taken_family_name_or_model_type_raises_registry_error():
    whisper = _FAMILIES["whisper"]
    assert register_encoder("whisper", model_types=("whisper",))(whisper) is whisper  # same: ok
    with pytest.raises(RegistryError, match="encoder family name 'whisper' is taken by "
                                            "probekit.encoders.whisper.WhisperEncoder"):
        register_encoder("whisper")(type("Other", (_Bare,), {}))
    with pytest.raises(RegistryError, match="model_type name 'wavlm' is taken"):
        register_encoder("my-wavlm", model_types=("wavlm",))(type("MyWavLM", (_Bare,), {}))
    assert "my-wavlm" not in available_encoders()   # refused before anything was registered
    with pytest.raises(EncoderError, match="not a subclass of Encoder"):
        register_encoder("not-an-encoder")(dict)
    assert _FAMILIES["whisper"] is whisper
