"""Issue 21 (stores and results): every bad store, results part or option is one line naming
the item, exit status 2, never a traceback; a damaged store is found by `probekit store
verify` and `extract` on the same folder writes only the damaged shard again.

One table, one row per kind of bad input: each builds the bad input in tmp_path from a tiny
store (extracted once per module) or a tiny results table, runs the command in-process and
checks the status, the absence of a traceback and the words naming the item."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probekit.cli import main
from probekit.probes.grid import run_grid

from tests.probes.test_grid import FakeStore, _meta
from tests.store.conftest import small_corpus, tiny_model_dir  # noqa: F401 (fixtures)

SHARD = "shards/00001"
ARRAY = f"{SHARD}/block1.utterance.npy"
META = f"{SHARD}/utterance.csv"


def _extract_argv(model, corpus_root, out) -> list[str]:
    return ["extract", "--encoder", str(model), "--corpus", str(corpus_root), "--out", str(out),
            "--pooling", "utterance", "--shard-size", "6", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def sound_store(tiny_model_dir, small_corpus, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("i21-store") / "store"
    assert main(_extract_argv(tiny_model_dir, small_corpus.root, out)) == 0
    return out


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".lock" not in p.name}


def _run(argv, capsys) -> tuple[int, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # the parser's own refusals exit 2 through argparse
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


# -- building bad inputs -------------------------------------------------------------------------

def _edit_json(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def _legacy(store: Path) -> None:
    """As a store written before checksums: no ``files`` records (only row counts checked)."""
    _edit_json(store / "store.json", lambda d: [s.pop("files", None) for s in d["shards"]])
    for info in store.glob("shards/*/shard.json"):
        _edit_json(info, lambda d: d.pop("files", None))


def _edit_meta(store: Path, fn) -> None:
    _legacy(store)
    df = pd.read_csv(store / META, dtype=str, keep_default_na=False)
    fn(df).to_csv(store / META, index=False)


def _truncate(store: Path) -> None:
    data = (store / ARRAY).read_bytes()
    (store / ARRAY).write_bytes(data[: len(data) // 2])


def _pickled(store: Path) -> None:
    np.save(store / ARRAY, np.array([{"a": 1}, "x"], dtype=object), allow_pickle=True)


def _same_size_other_bytes(store: Path) -> None:
    data = bytearray((store / ARRAY).read_bytes())
    data[-8:] = bytes(8) if data[-8:] != bytes(8) else b"\x01" * 8
    (store / ARRAY).write_bytes(bytes(data))


def _index_key(key, value=None, drop=False):
    def fn(d):
        if drop:
            d.pop(key)
        else:
            d[key] = value
    return lambda store: _edit_json(store / "store.json", fn)


def _part(res: Path) -> Path:
    return sorted(res.glob("part-*.csv"))[0]


def _edit_part(fn):
    def build(res: Path) -> None:
        df = pd.read_csv(_part(res), dtype=str, keep_default_na=False)
        fn(df).to_csv(_part(res), index=False)
    return build


def _set(col, value):
    def fn(df):
        df.loc[df.index[2], col] = value
        return df
    return fn


PROBE = ["probe", "--store", "S", "--out", "O", "--task", "speaker"]  # a task the store serves

# kind -> (what to damage: "store" or "results", builder, argv after the damage (S = store,
# R = results, O = a fresh output folder), words the message must hold (regex))
CASES = {
    "store-shard-truncated": ("store", _truncate, PROBE,
                              r"block1\.utterance\.npy has \d+ bytes; extraction wrote \d+"),
    "store-shard-pickled-object": ("store", _pickled, PROBE,
                                   r"block1\.utterance\.npy"),
    "store-shard-pickled-legacy": ("store", lambda s: (_legacy(s), _pickled(s)),
                                   PROBE,
                                   r"block1\.utterance\.npy: not an array extraction wrote"),
    "store-shard-truncated-legacy": ("store", lambda s: (_legacy(s), _truncate(s)),
                                     PROBE,
                                     r"block1\.utterance\.npy: not an array extraction wrote"),
    "store-shard-other-bytes": ("store", _same_size_other_bytes, ["store", "verify", "S"],
                                r"00001: .*block1\.utterance\.npy has other content"),
    "store-shard-file-missing": ("store", lambda s: (s / ARRAY).unlink(), ["store", "verify", "S"],
                                 r"00001: .*block1\.utterance\.npy is missing"),
    "store-index-truncated": ("store", lambda s: (s / "store.json").write_text(
                                  (s / "store.json").read_text()[:200]),
                              PROBE,
                              r"store\.json: unreadable store index"),
    "store-index-missing-key": ("store", _index_key("layers", drop=True),
                                PROBE,
                                r"store\.json: no 'layers'"),
    "store-index-wrong-type": ("store", _index_key("hidden_size", "big"),
                               PROBE,
                               r"store\.json: 'hidden_size' should be a positive integer, "
                               r"found \"big\""),
    "store-index-not-object": ("store", lambda s: (s / "store.json").write_text("[1, 2]"),
                               PROBE, r"store\.json: expected a JSON object"),
    "store-index-shard-entry": ("store", lambda s: _edit_json(
                                    s / "store.json", lambda d: d["shards"][1].pop("rows")),
                                PROBE,
                                r"store\.json: shards\[1\]: no 'rows'"),
    "store-meta-missing-column": ("store", lambda s: _edit_meta(
                                      s, lambda df: df.drop(columns=["speaker"])),
                                  PROBE,
                                  r"utterance\.csv: no column\(s\) \['speaker'\]"),
    "store-meta-not-a-number": ("store", lambda s: _edit_meta(s, _set("n_frames", "many")),
                                PROBE,
                                r"utterance\.csv: column 'n_frames' row 2: expected an integer, "
                                r"found 'many'"),
    "store-fingerprint-truncated": ("store", lambda s: (s / "fingerprint.json").write_text("{"),
                                    ["extract", "--encoder", "M", "--corpus", "C", "--out", "S",
                                     "--pooling", "utterance", "--shard-size", "6", "-q"],
                                    r"fingerprint\.json: unreadable"),
    "option-layers-not-a-layer": ("store", None,
                                  [*PROBE, "--layers", "a"],
                                  r"layer 'a' is not in the store; layers are indices -\d+\.\.\d+"),
    "option-layers-out-of-range": ("store", None,
                                   [*PROBE, "--layers", "0,99"],
                                   r"layer index 99 is out of range; layers are indices "
                                   r"-\d+\.\.\d+"),
    "option-layers-empty": ("store", None, [*PROBE, "--layers", ","],
                            r"--layers: ',' names no layer"),
    "option-seeds-not-integer": ("store", None,
                                 [*PROBE, "--seeds", "0,a"],
                                 r"--seeds: 'a' is not a seed"),
    "option-max-epochs-zero": ("store", None,
                               [*PROBE, "--max-epochs", "0"],
                               r"--max-epochs: 0 must be an integer >= 1"),
    "option-extract-batch-size-zero": ("store", None,
                                       ["extract", "--encoder", "M", "--corpus", "C", "--out", "O",
                                        "--batch-size", "0"],
                                       r"--batch-size: 0 must be an integer >= 1"),
    "option-extract-max-batch-seconds": ("store", None,
                                         ["extract", "--encoder", "M", "--corpus", "C", "--out",
                                          "O", "--max-batch-seconds", "-1"],
                                         r"--max-batch-seconds: -1 must be a number of seconds"),
    "results-part-missing-column": ("results", _edit_part(lambda df: df.drop(columns=["n"])),
                                    ["analyze", "R", "--out", "O"],
                                    r"part-[^ ]+\.csv: results table lacks column\(s\) \['n'\]"),
    "results-part-not-a-number": ("results", _edit_part(_set("value", "low")),
                                  ["analyze", "R", "--out", "O"],
                                  r"part-[^ ]+\.csv: column 'value' row 2: expected a number, "
                                  r"found 'low'"),
    "results-part-wrong-dtype": ("results", _edit_part(_set("seed", "1.5")),
                                 ["results", "dedupe", "R"],
                                 r"part-[^ ]+\.csv: column 'seed' row 2: expected an integer, "
                                 r"found '1\.5'"),
    "results-part-empty-count": ("results", _edit_part(_set("n", "")),
                                 ["analyze", "R", "--out", "O"],
                                 r"part-[^ ]+\.csv: column 'n' row 2: expected an integer"),
    "probe-out-is-a-file": ("store", lambda s: (s.parent / "out").write_text("a user's file"),
                            PROBE, r"out is a file"),
    "extract-out-is-a-file": ("store", lambda s: (s.parent / "out").write_text("a user's file"),
                              ["extract", "--encoder", "M", "--corpus", "C", "--out", "O",
                               "--pooling", "utterance", "--device", "cpu", "-q"],
                              r"out is a file"),
    "results-part-binary": ("results", lambda r: _part(r).write_bytes(b"\xff\xfe\x00\x81" * 64),
                            ["results", "dedupe", "R"],
                            r"part-[^ ]+\.csv: unreadable results part"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_input_is_one_line_naming_the_item(kind, sound_store, small_corpus, tiny_model_dir,
                                               tmp_path, capsys):  # noqa: F811
    what, build, argv, words = CASES[kind]
    if what == "store":
        target = tmp_path / "store"
        shutil.copytree(sound_store, target)
    else:
        s = FakeStore(_meta())
        s.fingerprint = {"encoder": "fake", "corpus": "A"}
        target = tmp_path / "res"
        run_grid(s, "phone", target, seeds=(0,), layers=["conv"], progress=False)
    if build is not None:
        build(target)
    subst = {"S": target, "R": target, "O": tmp_path / "out", "M": tiny_model_dir,
             "C": small_corpus.root}
    rc, text = _run([subst.get(a, a) for a in argv], capsys)
    assert rc == 2, (kind, rc, text[-2000:])
    assert "Traceback" not in text, text[-2000:]
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1 and re.search(words, errors[0]), (kind, text[-2000:])


def test_extract_on_a_damaged_store_writes_only_the_damaged_shard(sound_store, small_corpus,
                                                                  tiny_model_dir, tmp_path,
                                                                  capsys):  # noqa: F811
    store = tmp_path / "store"
    shutil.copytree(sound_store, store)
    before = _snapshot(store)
    assert _run(["store", "verify", store], capsys)[0] == 0
    _same_size_other_bytes(store)
    (store / "shards/00002/utterance.csv").unlink()
    rc, text = _run(["store", "verify", store], capsys)
    assert rc == 2 and "2 of 3 shard(s) damaged" in text and "00000" not in text, text
    sound = store / "shards/00000"
    kept = {p.name: p.stat().st_mtime_ns for p in sound.iterdir()}
    assert main(_extract_argv(tiny_model_dir, small_corpus.root, store)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in sound.iterdir()} == kept  # not rewritten
    assert _snapshot(store) == before  # the damaged shards are back, byte for byte
    assert not list((store / "shards").glob(".tmp-*"))
    assert _run(["store", "verify", store], capsys)[0] == 0


def test_extract_writes_an_unreadable_index_again_from_the_shards(
        sound_store, small_corpus, tiny_model_dir, tmp_path):  # noqa: F811
    store = tmp_path / "store"
    shutil.copytree(sound_store, store)
    before = _snapshot(store)
    shards = {p: p.stat().st_mtime_ns for p in store.glob("shards/*/*")}
    (store / "store.json").write_text("{")
    assert main(_extract_argv(tiny_model_dir, small_corpus.root, store)) == 0
    assert _snapshot(store) == before
    assert {p: p.stat().st_mtime_ns for p in store.glob("shards/*/*")} == shards
