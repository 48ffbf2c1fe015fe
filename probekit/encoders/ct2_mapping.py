"""Map a CTranslate2 Whisper checkpoint onto ``transformers``' config and state dict.

Builds the ``WhisperConfig`` the checkpoint's shapes imply, renames (and splits fused)
variables to Hugging Face names, and loads them into a model with every shape checked.
Split out of ``probekit.encoders.ctranslate2_convert``, which re-exports these names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from probekit.encoders.ct2_reader import CT2Checkpoint
from probekit.errors import WeightsError

# Whisper fixes its head size at 64 for every released size (tiny 384/6 ... large 1280/20).
WHISPER_HEAD_DIM = 64


# --------------------------------------------------------------------------- config


def _layer_count(ckpt: CT2Checkpoint, stack: str) -> int:
    indices = {
        int(m.group(1))
        for name in ckpt.variables
        if (m := re.match(rf"{stack}/layer_(\d+)/", name))
    }
    if not indices:
        raise WeightsError(f"{ckpt.path}: no {stack} layers found (variables {stack}/layer_N/...)")
    if indices != set(range(len(indices))):
        raise WeightsError(
            f"{ckpt.path}: {stack} layer indices are not contiguous: {sorted(indices)}"
        )
    return len(indices)


def _scalar(ckpt: CT2Checkpoint, name: str) -> int | None:
    value = ckpt.variables.get(name)
    return None if value is None or value.size != 1 else int(value.reshape(()))


def _token_id(vocab: dict[str, int], token: str, tokenizer_json: Path) -> int:
    try:
        return vocab[token]
    except KeyError:
        raise WeightsError(f"{tokenizer_json}: special token {token!r} is missing") from None


def _special_tokens(tokenizer_json: Path) -> dict[str, int]:
    try:
        data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        return {t["content"]: int(t["id"]) for t in data["added_tokens"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{tokenizer_json}: cannot read added_tokens: {exc}") from exc


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read JSON: {exc}") from exc


def whisper_config_from_ct2(ckpt: CT2Checkpoint, source_dir: Path):
    """Build a ``WhisperConfig`` from tensor shapes and the package's JSON files.

    Sizes come from the tensors (so they cannot disagree with them); token ids come from
    ``tokenizer.json`` and suppression lists from the CTranslate2 ``config.json``.

    Parameters
    ----------
    ckpt : CT2Checkpoint
    source_dir : Path
        Folder holding ``config.json`` and ``tokenizer.json``.

    Returns
    -------
    transformers.WhisperConfig
    """
    from transformers import WhisperConfig

    conv1 = ckpt.get("encoder/conv1/weight")  # (d_model, n_mels, 3)
    if conv1.ndim != 3:
        raise WeightsError(
            f"{ckpt.path}: variable 'encoder/conv1/weight' has shape {conv1.shape}, expected "
            "(d_model, n_mels, 3)"
        )
    d_model, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    if d_model % WHISPER_HEAD_DIM:
        raise WeightsError(
            f"{ckpt.path}: d_model {d_model} from 'encoder/conv1/weight' is not a multiple "
            f"of Whisper's head size {WHISPER_HEAD_DIM}"
        )
    heads = d_model // WHISPER_HEAD_DIM
    for stack in ("encoder", "decoder"):
        stored = _scalar(ckpt, f"{stack}/num_heads")
        if stored is not None and stored != heads:
            raise WeightsError(
                f"{ckpt.path}: variable '{stack}/num_heads' is {stored} but d_model {d_model} "
                f"implies {heads} heads of size {WHISPER_HEAD_DIM}"
            )

    tokenizer_json = source_dir / "tokenizer.json"
    special = _special_tokens(tokenizer_json)
    eot = _token_id(special, "<|endoftext|>", tokenizer_json)
    sot = _token_id(special, "<|startoftranscript|>", tokenizer_json)
    vocab_size = int(ckpt.get("decoder/embeddings/weight").shape[0])
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=n_mels,
        d_model=d_model,
        encoder_layers=_layer_count(ckpt, "encoder"),
        decoder_layers=_layer_count(ckpt, "decoder"),
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=int(ckpt.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(ckpt.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(ckpt.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(ckpt.get("decoder/position_encodings/encodings").shape[0]),
        activation_function="gelu",
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=sot,
        # Suppression lists belong to generation_config.json only: transformers 5 warns
        # when the model config carries generation parameters too.
        suppress_tokens=None,
        begin_suppress_tokens=None,
        tie_word_embeddings=True,
    )


# ----------------------------------------------------------------------- state dict


def _split(array: np.ndarray, parts: int, name: str, path: Path) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise WeightsError(
            f"{path}: variable {name!r} with shape {array.shape} cannot be split in {parts} "
            "along dim 0"
        )
    return np.split(array, parts, axis=0)


def _attention(
    ckpt: CT2Checkpoint, src: str, dst: str, fused: str, out: dict[str, tuple[str, np.ndarray]]
) -> None:
    """Map one attention block. ``fused`` is "qkv" (self) or "kv" (cross attention).

    Whisper's key projection has no bias. CTranslate2 stores a zero one for the fused
    matmul; dropping it is exact even if it were not zero, because q.(k + b) adds the
    same q.b to every key's score and softmax is invariant to that shift.
    """
    out[f"{dst}_layer_norm.weight"] = (f"{src}/layer_norm/gamma", ckpt.get(f"{src}/layer_norm/gamma"))
    out[f"{dst}_layer_norm.bias"] = (f"{src}/layer_norm/beta", ckpt.get(f"{src}/layer_norm/beta"))
    if fused == "qkv":
        fused_name, out_name = f"{src}/linear_0", f"{src}/linear_1"
        projections = ["q", "k", "v"]
    else:
        out[f"{dst}.q_proj.weight"] = (f"{src}/linear_0/weight", ckpt.get(f"{src}/linear_0/weight"))
        out[f"{dst}.q_proj.bias"] = (f"{src}/linear_0/bias", ckpt.get(f"{src}/linear_0/bias"))
        fused_name, out_name = f"{src}/linear_1", f"{src}/linear_2"
        projections = ["k", "v"]
    weights = _split(ckpt.get(f"{fused_name}/weight"), len(projections), f"{fused_name}/weight", ckpt.path)
    biases = _split(ckpt.get(f"{fused_name}/bias"), len(projections), f"{fused_name}/bias", ckpt.path)
    for proj, w, b in zip(projections, weights, biases):
        out[f"{dst}.{proj}_proj.weight"] = (f"{fused_name}/weight", w)
        if proj != "k":
            out[f"{dst}.{proj}_proj.bias"] = (f"{fused_name}/bias", b)
    out[f"{dst}.out_proj.weight"] = (f"{out_name}/weight", ckpt.get(f"{out_name}/weight"))
    out[f"{dst}.out_proj.bias"] = (f"{out_name}/bias", ckpt.get(f"{out_name}/bias"))


def _ffn(ckpt: CT2Checkpoint, src: str, dst: str, out: dict) -> None:
    for ct2, hf in (("linear_0", "fc1"), ("linear_1", "fc2")):
        for kind in ("weight", "bias"):
            out[f"{dst}.{hf}.{kind}"] = (f"{src}/{ct2}/{kind}", ckpt.get(f"{src}/{ct2}/{kind}"))
    out[f"{dst}.final_layer_norm.weight"] = (f"{src}/layer_norm/gamma", ckpt.get(f"{src}/layer_norm/gamma"))
    out[f"{dst}.final_layer_norm.bias"] = (f"{src}/layer_norm/beta", ckpt.get(f"{src}/layer_norm/beta"))


def whisper_state_dict_from_ct2(
    ckpt: CT2Checkpoint, config
) -> dict[str, tuple[str, np.ndarray]]:
    """Map CTranslate2 variables onto ``WhisperForConditionalGeneration`` parameter names.

    Parameters
    ----------
    ckpt : CT2Checkpoint
    config : transformers.WhisperConfig
        Gives the layer counts.

    Returns
    -------
    dict of str to (str, np.ndarray)
        HF parameter name to (source CTranslate2 variable name, array in stored dtype).
        The source name is kept so shape errors can name the variable in ``model.bin``.

    Raises
    ------
    WeightsError
        A required variable is missing, or a weight variable is left unused (which would
        mean the file describes a different architecture than the one built).
    """
    out: dict[str, tuple[str, np.ndarray]] = {}

    def direct(hf: str, ct2: str) -> None:
        out[hf] = (ct2, ckpt.get(ct2))

    for i in (1, 2):
        direct(f"model.encoder.conv{i}.weight", f"encoder/conv{i}/weight")
        direct(f"model.encoder.conv{i}.bias", f"encoder/conv{i}/bias")
    direct("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")
    for i in range(config.encoder_layers):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _attention(ckpt, f"{src}/self_attention", f"{dst}.self_attn", "qkv", out)
        _ffn(ckpt, f"{src}/ffn", dst, out)
    direct("model.encoder.layer_norm.weight", "encoder/layer_norm/gamma")
    direct("model.encoder.layer_norm.bias", "encoder/layer_norm/beta")

    direct("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    direct("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")
    for i in range(config.decoder_layers):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _attention(ckpt, f"{src}/self_attention", f"{dst}.self_attn", "qkv", out)
        _attention(ckpt, f"{src}/attention", f"{dst}.encoder_attn", "kv", out)
        _ffn(ckpt, f"{src}/ffn", dst, out)
    direct("model.decoder.layer_norm.weight", "decoder/layer_norm/gamma")
    direct("model.decoder.layer_norm.bias", "decoder/layer_norm/beta")

    # Whisper ties the output projection to the token embedding; CTranslate2 records
    # that as an alias. A separate, different projection cannot be represented.
    projection = ckpt.variables.get("decoder/projection/weight")
    if projection is not None and projection is not ckpt.variables["decoder/embeddings/weight"]:
        if not np.array_equal(projection, ckpt.variables["decoder/embeddings/weight"]):
            raise WeightsError(
                f"{ckpt.path}: variable 'decoder/projection/weight' differs from "
                "'decoder/embeddings/weight'; Whisper ties them, so this file is not a "
                "Whisper checkpoint this converter can represent"
            )
    direct("proj_out.weight", "decoder/embeddings/weight")

    used = {ct2 for ct2, _ in out.values()} | set(ckpt.aliases)
    unused = [
        name
        for name, value in ckpt.variables.items()
        if name not in used and value.ndim > 0  # rank-0 entries are options, not weights
    ]
    if unused:
        raise WeightsError(
            f"{ckpt.path}: {len(unused)} weight variable(s) do not fit a Whisper model with "
            f"{config.encoder_layers} encoder / {config.decoder_layers} decoder layers, "
            f"e.g. {unused[:3]}"
        )
    return out


def _to_tensors(mapped: dict[str, tuple[str, np.ndarray]], expected: dict, path: Path) -> dict:
    """Check every shape against the model built from the config; widen to float32."""
    import torch

    tensors = {}
    for hf_name, (ct2_name, array) in mapped.items():
        if hf_name in expected and tuple(expected[hf_name].shape) != tuple(array.shape):
            raise WeightsError(
                f"{path}: variable {ct2_name!r} gives {hf_name} shape {tuple(array.shape)}, "
                f"but the config implies {tuple(expected[hf_name].shape)}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise WeightsError(
                f"{path}: variable {ct2_name!r} is {array.dtype}; quantized (int8) "
                "checkpoints are not supported, use a float16/float32 one"
            )
        tensors[hf_name] = torch.from_numpy(np.array(array, dtype=np.float32))
    return tensors


def load_checked(model, tensors: dict, path: Path, *, assign: bool = False) -> None:
    """Load ``tensors`` into ``model`` requiring 0 missing and 0 unexpected keys.

    ``assign=True`` adopts the tensors instead of copying, for a model built on the meta
    device.

    Raises
    ------
    WeightsError
        Naming the missing and unexpected keys.
    """
    result = model.load_state_dict(tensors, strict=False, assign=assign)
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(
            f"{path}: converted weights do not match WhisperForConditionalGeneration: "
            f"{len(result.missing_keys)} missing {result.missing_keys[:5]}, "
            f"{len(result.unexpected_keys)} unexpected {result.unexpected_keys[:5]}"
        )
