"""Crash safety and reuse: kill -9 and restart, no-op rerun, fingerprint mismatches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from probekit.corpus.model import Corpus
from probekit.errors import StoreError
from probekit.store import extract

SETTINGS = dict(shard_size=2, batch_size=1, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    """Every shard file and the index, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (p.parent.name.isdigit() or p.name == "store.json")}


def _stamps(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.glob("shards/0*/*")}


class _Counter:
    """Wraps an encoder's ``encode`` to count encoded utterances (or forbid encoding)."""

    def __init__(self, encoder, forbid=False):
        self.encoder, self.forbid, self.n = encoder, forbid, 0

    def __enter__(self):
        orig = self.encoder.encode

        def encode(waves, *a, **k):
            if self.forbid:
                raise AssertionError("encode called")
            self.n += len(waves)
            return orig(waves, *a, **k)

        self.encoder.encode = encode
        return self

    def __exit__(self, *exc):
        del self.encoder.encode  # back to the class method


@pytest.fixture(scope="module")
def reference(tiny_encoder, small_corpus, tmp_path_factory):
    return extract(tiny_encoder, small_corpus, tmp_path_factory.mktemp("ref") / "s", **SETTINGS)


def test_kill9_then_resume_gives_identical_store(reference, tiny_encoder, tiny_model_dir,
                                                 small_corpus, tmp_path):
    out = tmp_path / "s"
    # A real process, slowed down per batch so that it is surely killed mid-run.
    script = textwrap.dedent(f"""
        import time
        from probekit.corpus.readers import read_corpus
        from probekit.encoders import load_encoder
        from probekit.store import extract
        enc = load_encoder({str(tiny_model_dir)!r}, device="cpu")
        orig = enc.encode
        def slow(*a, **k):
            time.sleep(0.25)
            return orig(*a, **k)
        enc.encode = slow
        extract(enc, read_corpus({str(small_corpus.root)!r}), {str(out)!r},
                shard_size=2, batch_size=1, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("shards/0*"))) < 2:
            assert proc.poll() is None, "the extraction ended before it could be killed"
            assert time.monotonic() < deadline, "no shard appeared within 60 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "store.json").exists()
    finished = _stamps(out)
    n_done = len(list(out.glob("shards/0*")))
    assert 2 <= n_done < 9

    with _Counter(tiny_encoder) as c:
        store = extract(tiny_encoder, small_corpus, out, **SETTINGS)
    assert c.n == len(small_corpus) - 2 * n_done  # finished shards were not recomputed
    after = _stamps(out)
    assert {k: after[k] for k in finished} == finished  # ...nor rewritten
    assert not list(out.glob("shards/.tmp-*"))  # the killed run's temp folder is cleaned
    assert _files(out) == _files(reference.root)
    assert store.index == reference.index


def test_rerun_of_finished_store_is_a_noop(reference, tiny_encoder, small_corpus):
    before = _stamps(reference.root)
    index_mtime = (reference.root / "store.json").stat().st_mtime_ns
    with _Counter(tiny_encoder, forbid=True):
        again = extract(tiny_encoder, small_corpus, reference.root, **SETTINGS)
    assert again.index == reference.index
    assert _stamps(reference.root) == before
    assert (reference.root / "store.json").stat().st_mtime_ns == index_mtime


def test_missing_shard_is_recomputed_alone(reference, tiny_encoder, small_corpus, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(reference.root, out)
    (out / "store.json").unlink()
    shutil.rmtree(out / "shards" / "00004")
    with _Counter(tiny_encoder) as c:
        extract(tiny_encoder, small_corpus, out, **SETTINGS)
    assert c.n == 2
    assert _files(out) == _files(reference.root)


def test_fingerprint_mismatches_are_refused(reference, tiny_encoder, small_corpus, tmp_path):
    from probekit.encoders import load_encoder
    from probekit.testing.tiny_models import save_tiny_ssl

    root = reference.root
    other_dir = save_tiny_ssl("wav2vec2", tmp_path / "w2v2", seed=1)
    other = load_encoder(str(other_dir), device="cpu")
    # Same name, other weights: the weights hash catches it.
    other.name = tiny_encoder.name
    with pytest.raises(StoreError, match="changed: encoder_weights"):
        extract(other, small_corpus, root, **SETTINGS)
    relabelled = Corpus([small_corpus[0].replace(speaker="someone-else"), *small_corpus[1:]],
                        root=small_corpus.root)
    with pytest.raises(StoreError, match="changed: corpus"):
        extract(tiny_encoder, relabelled, root, **SETTINGS)
    with pytest.raises(StoreError, match=r"poolings: \['utterance', 'phone'\] -> \['utterance'\]"):
        extract(tiny_encoder, small_corpus, root, **{**SETTINGS, "poolings": ("utterance",)})
    with pytest.raises(StoreError, match="dtype: 'float16' -> 'float32'"):
        extract(tiny_encoder, small_corpus, root, **{**SETTINGS, "dtype": "float32"})
    with pytest.raises(StoreError, match="layers:"):
        extract(tiny_encoder, small_corpus, root, **{**SETTINGS, "layers": [0, 1]})
    with pytest.raises(StoreError, match="shard_size: 2 -> 3"):
        extract(tiny_encoder, small_corpus, root, **{**SETTINGS, "shard_size": 3})
    # Nothing was touched by the refusals; overwrite=True replaces the store (on a copy).
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    s = extract(other, small_corpus[:4], copy, overwrite=True, **SETTINGS)
    assert s.fingerprint["encoder_weights"] == other.fingerprint
    assert s.index["rows"]["utterance"] == 4 and len(list(copy.glob("shards/0*"))) == 2
