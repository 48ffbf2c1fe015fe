"""Hugging Face ``datasets`` -> Corpus (``pip install 'probekit[hf]'``).

Reads, offline unless a hub id is given:

- a dataset saved with ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (a folder with
  ``dataset_info.json`` + ``state.json``, or ``dataset_dict.json`` with one folder per split);
- a folder of ``*.parquet`` or ``*.arrow`` files (e.g. a hub snapshot's ``data/`` folder);
- a hub id such as ``"edinburghcstr/edacc"`` (needs the hub; ``split=`` picks a split).

One utterance per row. A **column mapping** says where each field is; ``groups`` maps group
attributes to columns (``{"accent": "accent", "gender": "gender"}``). Genders are normalised to
``male``/``female``; empty or missing group values leave the utterance without that label (so
``probekit corpus validate`` reports them). ``preset=`` fills a mapping for a known dataset:

===============  ==========  ==============  ===========  =====================================
preset           text        speaker         id           groups
===============  ==========  ==============  ===========  =====================================
``edacc``        ``text``    ``speaker``     ``id``       accent <- ``accent``, l1 <- ``l1``,
                                                          gender <- ``gender``
``common_voice`` ``sentence`` ``client_id``  ``path``     accent <- ``accent`` (``accents`` in
                                                          v10+), gender, age
``speech_accent  ``text``    ``speaker_id``  (row)        l1 <- ``native_language``, gender
_archive``                                                <- ``sex``, country <- ``country``
``fair_speech``  ``transcription`` ``hash_name`` (row)    gender, age, first_language,
                                                          ethnicity, socioeconomic_bkgd
===============  ==========  ==============  ===========  =====================================

These follow the column names of the published copies when this was written; check yours
with ``datasets.load_from_disk(path).column_names`` and override any entry, e.g.
``read_corpus(path, kind="hf", preset="common_voice", groups={"accent": "accents"})``. A
mapped column that is absent is an error naming the columns the dataset has.

Audio: an ``Audio`` column is read without decoding. A row whose audio has a ``path`` that
exists on disk is used in place; audio held as bytes (as ``save_to_disk`` and parquet store it)
is written once, as the original encoded file, to ``audio_dir`` (default: the probekit cache,
one folder per dataset). A plain string column is a file path, relative to the dataset folder.
Word/phone alignments are read from optional ``words``/``phones`` columns holding
``[symbol, start, end]`` lists.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from probekit.corpus.model import AudioSource, Corpus, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import header_seconds, normalise_gender, with_sentence_ids
from probekit.errors import CorpusError

__all__ = ["read_hf", "from_hf_dataset", "HF_PRESETS"]

#: Column mappings of known datasets (see the module docstring).
HF_PRESETS: dict[str, dict[str, Any]] = {
    "edacc": {"audio": "audio", "text": "text", "speaker": "speaker", "id": "id",
              "groups": {"accent": "accent", "l1": "l1", "gender": "gender"}},
    "common_voice": {"audio": "audio", "text": "sentence", "speaker": "client_id", "id": "path",
                     "groups": {"accent": "accent", "gender": "gender", "age": "age"}},
    "speech_accent_archive": {"audio": "audio", "text": "text", "speaker": "speaker_id",
                              "id": None, "groups": {"l1": "native_language", "gender": "sex",
                                                     "country": "country"}},
    "fair_speech": {"audio": "audio", "text": "transcription", "speaker": "hash_name", "id": None,
                    "groups": {"gender": "gender", "age": "age",
                               "first_language": "first_language", "ethnicity": "ethnicity",
                               "socioeconomic_bkgd": "socioeconomic_bkgd"}},
}
_DEFAULT = {"audio": "audio", "text": "text", "speaker": "speaker", "id": "id", "groups": None}


def _import_datasets():
    try:
        import datasets
    except ImportError as exc:  # an optional dependency
        raise CorpusError(f"reading Hugging Face datasets needs the datasets package: "
                          f"pip install 'probekit[hf]' ({exc})") from exc
    return datasets


def _data_files(path: Path) -> tuple[str, list[Path]] | None:
    for ext in ("parquet", "arrow"):
        files = sorted(p for p in path.rglob(f"*.{ext}") if p.is_file())
        if files:
            return ext, files
    return None


def _detect(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file():
        return True
    if (path / "dataset_info.json").is_file() and (path / "state.json").is_file():
        return True
    # A folder of parquet/arrow files and nothing that another reader claims.
    return any(p.suffix in (".parquet", ".arrow") for p in path.iterdir() if p.is_file()) or (
        (path / "data").is_dir() and any(p.suffix == ".parquet" for p in (path / "data").iterdir()))


def _readable(path: Path, read):
    """``read()``; any failure (truncated or foreign file: pyarrow and datasets raise many
    types) is a ``CorpusError`` naming ``path``."""
    try:
        return read()
    except Exception as exc:  # noqa: BLE001
        raise CorpusError(f"{path}: not a readable dataset file ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _load(path: str | os.PathLike, split: str | None):
    datasets = _import_datasets()
    p = Path(path)
    if p.exists():
        if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
            ds = _readable(p, lambda: datasets.load_from_disk(str(p)))
        else:
            found = _data_files(p)
            if found is None:
                raise CorpusError(f"{p}: no save_to_disk dataset and no *.parquet/*.arrow files")
            ext, files = found
            if ext == "arrow":
                ds = datasets.concatenate_datasets(
                    [_readable(f, lambda f=f: datasets.Dataset.from_file(str(f))) for f in files])
            else:
                import pyarrow.parquet as pq

                for f in files:  # a damaged file is named before datasets reads them all
                    _readable(f, lambda f=f: pq.read_metadata(f))
                ds = _readable(p, lambda: datasets.Dataset.from_parquet([str(f) for f in files]))
    else:
        try:
            ds = datasets.load_dataset(str(path), split=split)
        except Exception as exc:  # network, auth, unknown id: one line naming the id
            raise CorpusError(f"cannot load Hugging Face dataset {str(path)!r}: {exc}") from exc
    if isinstance(ds, datasets.DatasetDict):
        if split is not None:
            if split not in ds:
                raise CorpusError(f"{path} has splits {sorted(ds)}, not {split!r}")
            ds = ds[split]
        else:
            ds = datasets.concatenate_datasets([ds[k] for k in sorted(ds)])
    return ds


def _mapping(preset: str | None, columns: Mapping[str, Any] | None,
             groups: Mapping[str, str] | None) -> dict[str, Any]:
    if preset is not None and preset not in HF_PRESETS:
        raise CorpusError(f"unknown preset {preset!r}; known: {sorted(HF_PRESETS)}")
    m = dict(HF_PRESETS[preset] if preset else _DEFAULT)
    m["groups"] = dict(m.get("groups") or {})
    for k, v in (columns or {}).items():
        if k not in ("audio", "text", "speaker", "id", "words", "phones", "sentence_id"):
            raise CorpusError(f"unknown column role {k!r}; roles: audio, text, speaker, id, "
                              "words, phones, sentence_id (group attributes go in groups=)")
        m[k] = v
    if groups is not None:
        m["groups"].update(groups)
    return m


def _ext(path: str | None, data: bytes) -> str:
    if path and Path(path).suffix:
        return Path(path).suffix.lower()
    head = data[:12]
    if head[:4] == b"RIFF":
        return ".wav"
    if head[:4] == b"fLaC":
        return ".flac"
    if head[:4] == b"OggS":
        return ".ogg"
    return ".mp3"


def _safe(s: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in s)
    return keep[:120] or hashlib.sha1(s.encode()).hexdigest()[:12]


def from_hf_dataset(ds, *, root: str | os.PathLike | None = None, preset: str | None = None,
                    columns: Mapping[str, Any] | None = None,
                    groups: Mapping[str, str] | None = None,
                    audio_dir: str | os.PathLike | None = None,
                    name: str = "hf") -> Corpus:
    """A :class:`Corpus` from a ``datasets.Dataset`` (see the module docstring for the mapping).

    Parameters
    ----------
    ds : datasets.Dataset
    root : path, optional
        Folder that string audio paths are relative to.
    preset : str, optional
        A key of :data:`HF_PRESETS`.
    columns : mapping, optional
        Role -> column: ``audio``, ``text``, ``speaker``, ``id`` (``None``: the row number),
        ``words``, ``phones``, ``sentence_id``.
    groups : mapping, optional
        Group attribute -> column (default: the preset's; none without a preset).
    audio_dir : path, optional
        Where audio held as bytes is written (default: the probekit cache).
    """
    datasets = _import_datasets()
    m = _mapping(preset, columns, groups)
    have = list(ds.column_names)
    needed = {role: m[role] for role in ("audio", "speaker") if m.get(role)}
    needed.update({f"groups.{g}": c for g, c in m["groups"].items()})
    for role in ("text", "id", "words", "phones", "sentence_id"):
        if m.get(role):
            needed[role] = m[role]
    missing = {r: c for r, c in needed.items() if c not in have}
    # text/words/phones/sentence_id/id are optional only when left at the default mapping.
    optional = {r for r in ("text", "id", "words", "phones", "sentence_id")
                if (columns or {}).get(r) is None}
    hard = {r: c for r, c in missing.items() if r not in optional}
    if hard:
        raise CorpusError(f"dataset {name!r} lacks column(s) "
                          + ", ".join(f"{c!r} (for {r})" for r, c in hard.items())
                          + f"; its columns are {have}. Pass columns=/groups= to map them")
    m = {k: (None if isinstance(v, str) and v not in have and k in optional else v)
         for k, v in m.items()}
    audio_col = m["audio"]
    if audio_col is None or audio_col not in have:
        raise CorpusError(f"dataset {name!r} has no audio column {audio_col!r}; columns: {have}")
    feature = ds.features.get(audio_col)
    if isinstance(feature, datasets.Audio):
        ds = ds.cast_column(audio_col, datasets.Audio(decode=False))
    fingerprint = getattr(ds, "_fingerprint", None) or name
    out_dir = Path(audio_dir) if audio_dir is not None else None
    utts: list[Utterance] = []
    for i, row in enumerate(ds):
        uid = str(row[m["id"]]) if m.get("id") else f"{name}-{i:06d}"
        where = f"dataset {name!r} row {i} (utterance {uid})"
        spk = row.get(m["speaker"])
        if spk is None or not str(spk).strip():
            raise CorpusError(f"{where}: empty speaker column {m['speaker']!r}")
        audio = row[audio_col]
        sr = None
        if isinstance(audio, Mapping):
            path, data = audio.get("path"), audio.get("bytes")
            sr = audio.get("sampling_rate")
            if path and Path(path).is_file() and not data:
                src = str(Path(path).absolute())
            elif path and root is not None and (Path(root) / path).is_file() and not data:
                src = str(Path(path))
            elif data:
                if out_dir is None:
                    from probekit.corpus.synthetic import corpora_cache
                    out_dir = corpora_cache() / "hf-audio" / _safe(f"{name}-{fingerprint}")
                out_dir.mkdir(parents=True, exist_ok=True)
                f = out_dir / (_safe(uid) + _ext(path, data))
                if not f.is_file() or f.stat().st_size != len(data):
                    tmp = f.with_name(f.name + ".tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, f)
                src = str(f)
            else:
                raise CorpusError(f"{where}: audio has neither an existing file nor bytes "
                                  f"(path {path!r})")
        elif isinstance(audio, str) and audio:
            src = audio
        else:
            raise CorpusError(f"{where}: cannot read audio column {audio_col!r} ({type(audio).__name__})")
        labels = {}
        for attr, col in m["groups"].items():
            v = row.get(col)
            if v is None or not str(v).strip():
                continue
            labels[attr] = normalise_gender(v) if attr == "gender" else str(v).strip()
        full = Path(src) if Path(src).is_absolute() or root is None else Path(root) / src
        try:
            utts.append(Utterance(
                id=uid, audio=AudioSource(path=src, sample_rate=None if sr is None else int(sr)),
                duration=header_seconds(full),
                speaker=str(spk).strip(), groups=labels,
                text=" ".join(str(row.get(m["text"]) or "").split()) if m.get("text") else "",
                words=tuple(row.get(m["words"]) or ()) if m.get("words") else (),
                phones=tuple(row.get(m["phones"]) or ()) if m.get("phones") else (),
                sentence_id=(None if not m.get("sentence_id") or row.get(m["sentence_id"]) is None
                             else str(row[m["sentence_id"]]))))
        except CorpusError as exc:
            raise CorpusError(f"{where}: {exc}") from None
    if not utts:
        raise CorpusError(f"dataset {name!r} has no rows")
    return Corpus(with_sentence_ids(utts), root=root, name=name)


@register_reader("hf", _detect)
def read_hf(path: str | os.PathLike, *, split: str | None = None, preset: str | None = None,
            columns: Mapping[str, Any] | None = None, groups: Mapping[str, str] | None = None,
            audio_dir: str | os.PathLike | None = None, name: str | None = None) -> Corpus:
    """A Hugging Face dataset: a save_to_disk folder, parquet/arrow files, or a hub id.

    Parameters
    ----------
    path : path or str
        Folder on disk, or a hub id (needs the hub).
    split : str, optional
        Split of a DatasetDict (default: every split, concatenated).
    preset, columns, groups, audio_dir
        See :func:`from_hf_dataset`.
    """
    ds = _load(path, split)
    p = Path(path)
    return from_hf_dataset(ds, root=p if p.is_dir() else None, preset=preset, columns=columns,
                           groups=groups, audio_dir=audio_dir,
                           name=name or (p.name if p.exists() else str(path).replace("/", "-")))
