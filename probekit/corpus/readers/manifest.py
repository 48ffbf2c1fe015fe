"""Plain manifests: probekit's JSONL (one utterance per line; its writer and reader, behind
``Corpus.save``/``Corpus.load``) and CSV/TSV (one per row).

The schemas are documented in ``docs/readers.md``. Relative audio paths are resolved against
the manifest's folder.

CSV columns
-----------
``id``, ``audio``, ``speaker`` (required); ``text``, ``offset``, ``duration``, ``sample_rate``,
``sentence_id``, ``words``, ``phones`` (optional; ``words``/``phones`` are JSON lists of
``[symbol, start, end]``); every other column is a group attribute (``accent``, ``gender``,
...). An empty cell means "no label" (validation reports it). ``offset``/``duration``
(seconds) select a slice of the audio file; ``duration`` is also the utterance's length.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from probekit.corpus.model import MANIFEST_NAME, AudioSource, Corpus, Utterance
from probekit.corpus.readers import register_reader
from probekit.corpus.readers._common import with_sentence_ids
from probekit.errors import CorpusError
from probekit.schema import read_utf8

__all__ = ["read_jsonl", "read_csv", "write_jsonl", "load_jsonl", "CSV_COLUMNS"]

#: Columns with a fixed meaning; any other CSV column is a group attribute.
CSV_COLUMNS = ("id", "audio", "speaker", "text", "offset", "duration", "sample_rate",
               "sentence_id", "words", "phones")
_REQUIRED = ("id", "audio", "speaker")


def _first_record_keys(path: Path) -> set[str]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    return set(rec) if isinstance(rec, dict) else set()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    return set()


def _jsonl_path(path: Path) -> Path | None:
    if path.is_dir():
        path = path / MANIFEST_NAME
    return path if path.suffix == ".jsonl" and path.is_file() else None


def _detect_jsonl(path: Path) -> bool:
    p = _jsonl_path(path)
    return p is not None and {"id", "speaker", "audio"} <= _first_record_keys(p)


def _csv_path(path: Path) -> Path | None:
    if path.is_dir():
        hits = [path / n for n in ("manifest.csv", "manifest.tsv") if (path / n).is_file()]
        return hits[0] if len(hits) == 1 else None
    return path if path.suffix.lower() in (".csv", ".tsv") and path.is_file() else None


@register_reader("jsonl", _detect_jsonl)
def read_jsonl(path: str | os.PathLike, name: str | None = None) -> Corpus:
    """probekit's own JSONL manifest (what ``Corpus.save`` writes), with sentence ids."""
    c = load_jsonl(path, name=name)
    return Corpus(with_sentence_ids(c), root=c.root, name=c.name)


def write_jsonl(corpus: Corpus, path: str | os.PathLike) -> Path:
    """Write ``corpus`` as a JSONL manifest (:meth:`Corpus.save`); returns the file written.

    ``path`` is a file ending in ``.jsonl`` or a folder (``manifest.jsonl`` inside). Audio
    paths are written relative to the manifest's folder when they lie beneath it. The write
    is atomic (temporary file + rename).
    """
    path = Path(path)
    if path.suffix != ".jsonl":
        path = path / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for u in corpus:
            d = u.to_dict()
            p = u.audio.resolve(corpus.root)
            if p.is_absolute():
                try:
                    p = p.resolve().relative_to(folder)
                except ValueError:  # outside the corpus folder: keep it absolute
                    pass
            d["audio"]["path"] = p.as_posix()
            f.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_jsonl(path: str | os.PathLike, name: str | None = None) -> Corpus:
    """The records of a JSONL manifest as written (:meth:`Corpus.load`; :func:`read_jsonl`
    adds sentence ids). ``path`` is a file or a folder holding ``manifest.jsonl``.

    Raises ``CorpusError`` naming the line for malformed JSON or records.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.exists():
        raise CorpusError(f"manifest not found: {path}")
    utts = []
    text = read_utf8(path, CorpusError)  # a non-UTF-8 file: one line naming it
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        try:
            utts.append(Utterance.from_dict(d))
        except CorpusError as exc:
            raise CorpusError(f"{path}:{lineno}: {exc}") from None
    return Corpus(utts, root=path.parent, name=name or path.parent.name)


def _float_or_none(value: str, field: str, where: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise CorpusError(f"{where}: field {field!r} must be a number, got {value!r}") from None


def _segments(value: str, field: str, where: str) -> tuple:
    if value is None or not value.strip():
        return ()
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: field {field!r} is not a JSON list ({exc.msg})") from None
    if not isinstance(items, list):
        raise CorpusError(f"{where}: field {field!r} must be a JSON list of [symbol, start, end]")
    return tuple(items)


@register_reader("csv", lambda p: _csv_path(p) is not None)
def read_csv(path: str | os.PathLike, name: str | None = None) -> Corpus:
    """A CSV/TSV manifest: one utterance per row; extra columns are group labels."""
    p = _csv_path(Path(path))
    if p is None:
        raise CorpusError(f"no CSV/TSV manifest at {path}")
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    utts = []
    with io.StringIO(read_utf8(p, CorpusError), newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames or []
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            raise CorpusError(f"{p}: missing required column(s) {missing}; header is {header}")
        group_cols = [c for c in header if c not in CSV_COLUMNS]
        for row in reader:
            where = f"{p}:{reader.line_num}"
            if None in row:  # more cells than header columns
                raise CorpusError(f"{where}: row has more cells than the header")
            uid = (row.get("id") or "").strip()
            where = f"{where} (utterance {uid or '<no id>'})"
            for c in _REQUIRED:
                if not (row.get(c) or "").strip():
                    raise CorpusError(f"{where}: empty required field {c!r}")
            offset = _float_or_none(row.get("offset"), "offset", where) or 0.0
            duration = _float_or_none(row.get("duration"), "duration", where)
            sr = _float_or_none(row.get("sample_rate"), "sample_rate", where)
            try:
                utts.append(Utterance(
                    id=uid,
                    audio=AudioSource(path=row["audio"].strip(), offset=offset,
                                      sample_rate=None if sr is None else int(sr),
                                      duration=duration),
                    speaker=row["speaker"].strip(),
                    groups={c: row[c].strip() for c in group_cols if (row[c] or "").strip()},
                    text=(row.get("text") or "").strip(),
                    words=_segments(row.get("words"), "words", where),
                    phones=_segments(row.get("phones"), "phones", where),
                    duration=duration,
                    sentence_id=(row.get("sentence_id") or "").strip() or None,
                ))
            except CorpusError as exc:
                raise CorpusError(f"{where}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise CorpusError(f"{where}: malformed row ({exc})") from None
    try:
        return Corpus(with_sentence_ids(utts), root=p.parent, name=name or p.parent.name)
    except CorpusError as exc:
        raise CorpusError(f"{p}: {exc}") from None
