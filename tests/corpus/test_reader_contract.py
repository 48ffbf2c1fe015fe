"""The reader registry's contract (issue 22, item 10): every registered reader, iterated from
the registry itself, on a tiny folder in its own layout. A reader registered without a layout
here fails the test by name, so a new reader cannot skip the contract."""

from __future__ import annotations

import pytest

from probekit.corpus.readers import (available_readers, detect_kind, read_corpus, reader_options,
                                     register_reader)
from probekit.registry import RegistryError
from tests.corpus.test_ingest import _hf_rows, _mfa
from tests.corpus.test_readers import _l2arctic, _lhotse_fixture, _timit, tone

SR = 16000


def _csv(tmp_path):
    tone(tmp_path / "wav" / "a.wav")
    tone(tmp_path / "wav" / "b.wav")
    (tmp_path / "manifest.csv").write_text("id,audio,speaker,text,accent\n"
                                           "a,wav/a.wav,s1,hello,us\nb,wav/b.wav,s2,hi,gb\n")
    return tmp_path


def _jsonl(tmp_path):
    read_corpus(_csv(tmp_path / "src") / "manifest.csv").save(tmp_path / "out")
    return tmp_path / "out"


def _hf(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(_hf_rows(tmp_path)).cast_column(
        "audio", datasets.Audio(sampling_rate=SR, decode=False))
    ds.save_to_disk(str(tmp_path / "hf_saved"))
    return tmp_path / "hf_saved"


def _lhotse(tmp_path):
    _, recs, sups = _lhotse_fixture(tmp_path)
    (tmp_path / "m").mkdir()
    recs.to_file(tmp_path / "m" / "x_recordings_all.jsonl.gz")
    sups.to_file(tmp_path / "m" / "x_supervisions_all.jsonl.gz")
    return tmp_path / "m"


def _vctk(tmp_path):
    root = tmp_path / "vctk"
    root.mkdir()
    (root / "speaker-info.txt").write_text("ID  AGE  GENDER  ACCENTS  REGION  COMMENTS\n"
                                           "p225  23  F    English    Southern  England\n"
                                           "p234  22  F    Scottish  West  Dumfries\n")
    for spk in ("p225", "p234"):
        (root / "txt" / spk).mkdir(parents=True)
        (root / "txt" / spk / f"{spk}_001.txt").write_text("Please call Stella.\n")
        tone(root / "wav48_silence_trimmed" / spk / f"{spk}_001_mic2.flac", sr=48000, fmt="FLAC")
    return root


#: One tiny folder builder per layout: ``builder(tmp_path) -> path to read``.
LAYOUTS = {"csv": _csv, "jsonl": _jsonl, "hf": _hf, "lhotse": _lhotse, "l2arctic": _l2arctic,
           "mfa": _mfa, "timit": _timit, "vctk": _vctk}


@pytest.mark.parametrize("kind", list(available_readers()))
def test_every_registered_reader_keeps_the_contract(kind, tmp_path):
    assert kind in LAYOUTS, f"reader {kind!r} is registered but has no layout fixture here"
    path = LAYOUTS[kind](tmp_path)
    assert detect_kind(path) == kind                 # its layout, and no other reader's
    corpus = read_corpus(path)
    assert len(corpus) >= 2
    ids = [u.id for u in corpus]
    assert len(set(ids)) == len(ids) and all(ids)
    assert all(u.speaker for u in corpus)
    assert [u.id for u in read_corpus(path, kind=kind)] == ids
    samples, sr = corpus[0].load_audio(corpus.root)
    assert sr > 0 and len(samples) > 0
    # its options' schema is read from its signature (an unmapped annotation raises here)
    assert set(reader_options(kind).values()) <= {"table", "list[str]", "path", "bool", "int",
                                                  "number", "str"}
    assert available_readers()[kind], f"reader {kind!r} has no one-line description"


def test_a_taken_reader_name_raises_registry_error(tmp_path):
    from probekit.corpus.readers import _READERS
    from probekit.corpus.readers.manifest import _csv_path, read_csv

    held = _READERS["csv"]
    register_reader("csv", held.detect)(read_csv)    # the same reader again: allowed
    with pytest.raises(RegistryError, match="corpus reader name 'csv' is taken by "
                                            "probekit.corpus.readers.manifest.read_csv"):
        register_reader("csv", lambda p: _csv_path(p) is not None)(lambda path: None)
    with pytest.raises(RegistryError, match="corpus reader name 'csv' is taken"):
        register_reader("csv", held.detect)(lambda path: None)
    assert _READERS["csv"] is held
