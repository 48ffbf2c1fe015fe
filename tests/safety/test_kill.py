"""Issue 21 item 6/7: kill -9 of ``report``, ``study run`` and ``train`` at a point, then a
rerun without ``--overwrite``, gives what an uninterrupted run gives; the report is
deterministic. The kill points are picked at random (seeded, printed) from moments that
each command passes; ``benchmarks/kill_resume.py`` tries many more."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probekit.cli import main

ROOT = Path(__file__).resolve().parents[2]
RNG = random.Random(21)


def _run_and_kill(argv: list[str], ready, *, patch: str = "", timeout: float = 90) -> int:
    """Run ``probekit argv`` in a child process (``patch``: Python run first, e.g. to hold it
    at a point), SIGKILL it as soon as ``ready()`` is true; the child's return code."""
    script = textwrap.dedent(patch) + textwrap.dedent(f"""
        import sys
        from probekit.cli import main
        sys.exit(main({argv!r}))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise AssertionError("the command ended before it could be killed: "
                                     + proc.stderr.read().decode()[-2000:])
            assert time.monotonic() < deadline, "the kill point was not reached in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


def _text(path: Path, *roots: Path) -> str:
    s = path.read_text()
    for i, r in enumerate(roots):
        s = s.replace(str(r), f"<ROOT{i}>")
    return s


# -- report ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    from probekit.testing.simulate import simulate_results
    from probekit.probes.results import ResultsTable

    root = tmp_path_factory.mktemp("kill-report")
    df = simulate_results(n_groups=3, speakers_per_group=6, n_layers=3, seeds=(0, 1),
                          train_sets="full", group_offset={"g2": 0.2})
    ResultsTable(root / "results").append(df)
    assert main(["-q", "analyze", str(root / "results"), "--out", str(root / "analysis"),
                 "--n-boot", "30", "--n-perm", "49"]) == 0
    return root / "analysis"


REPORT_FILES = ("report.md", "report.html", "report_figures/at_a_glance.png",
                "report_figures/at_a_glance.svg")


def _report_bytes(folder: Path) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in REPORT_FILES}


def test_two_report_runs_are_byte_identical(analysis, tmp_path):
    for name in ("a", "b"):
        assert main(["-q", "report", str(analysis), "--out", str(tmp_path / name)]) == 0
    a, b = _report_bytes(tmp_path / "a"), _report_bytes(tmp_path / "b")
    assert [f for f in REPORT_FILES if a[f] != b[f]] == []


# Held just before the report's own metadata file is written: report.html is there, the
# report is not finished.
HOLD_REPORT_STAMP = """
    import pathlib, time
    for _name in ("write_text", "write_bytes"):
        def _hold(self, *a, _orig=getattr(pathlib.Path, _name), **k):
            if ".probekit-report.json" in self.name:
                time.sleep(600)
            return _orig(self, *a, **k)
        setattr(pathlib.Path, _name, _hold)
"""


@pytest.mark.parametrize("point", ["before its stamp", "at random"])
def test_report_killed_then_rerun_gives_the_same_report(point, analysis, tmp_path):
    assert main(["-q", "report", str(analysis), "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "rep"
    argv = ["-q", "report", str(analysis), "--out", str(out)]
    if point == "before its stamp":
        rc = _run_and_kill(argv, lambda: (out / "report.html").is_file(), patch=HOLD_REPORT_STAMP)
    else:
        t0, wait = time.monotonic(), RNG.uniform(1.0, 4.0)
        print(f"killing report {wait:.2f} s after its start")
        rc = _run_and_kill(argv, lambda: time.monotonic() - t0 > wait or
                           (out / "report.md").is_file())
    assert rc == -signal.SIGKILL
    assert main(["-q", "report", str(analysis), "--out", str(out)]) == 0  # no --overwrite
    assert _report_bytes(out) == _report_bytes(tmp_path / "ref")
    assert not list(out.rglob(".*.tmp"))  # a killed write's temporary file is gone


# -- study run ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_toml(tmp_path_factory, _isolated_cache):
    from probekit.testing.tiny_models import save_tiny_ssl

    root = tmp_path_factory.mktemp("kill-study")
    model = save_tiny_ssl("wav2vec2", root / "w2v2")
    (root / "study.toml").write_text(textwrap.dedent(f"""
        name = "kill"
        poolings = ["utterance", "phone"]
        [corpus]
        synthetic = "small"
        speakers_per_group = 4
        sentences_per_speaker = 2
        sentence_pool = 2
        group_attribute = "accent"
        [[encoders]]
        name = "{model}"
        label = "tiny"
        random_init = true
        [tasks.phone]
        probes = ["lda"]
        seeds = [0, 1]
        train_sets = ["all"]
        [analysis]
        n_boot = 10
        n_perm = 10
    """))
    ref = root / "ref"
    assert main(["-q", "study", "run", str(root / "study.toml"), "--out", str(ref)]) == 0
    return root / "study.toml", ref


STUDY_POINTS = {
    "store": lambda out: any(out.glob("work/stores/*/shards/0*")),
    "probe grid": lambda out: any(out.glob("work/results/part-*")),
    "analysis": lambda out: (out / "analysis" / "findings.md").is_file(),
    "report": lambda out: (out / "report.md").is_file(),
}


def _study_tables(out: Path) -> dict[str, str]:
    files = sorted(out.glob("analysis/*.csv")) + [out / "report.md"]
    return {str(f.relative_to(out)): _text(f, out) for f in files}


@pytest.mark.parametrize("point", sorted(RNG.sample(sorted(STUDY_POINTS), 2)))
def test_study_killed_then_rerun_gives_the_same_tables(point, study_toml, tmp_path):
    toml, ref = study_toml
    out = tmp_path / "study"
    argv = ["-q", "study", "run", str(toml), "--out", str(out)]
    print(f"killing the study when its {point} appears")
    assert _run_and_kill(argv, lambda: STUDY_POINTS[point](out)) == -signal.SIGKILL
    assert not (out / "run.json").exists()
    assert main(argv) == 0
    got, want = _study_tables(out), _study_tables(ref)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []
    assert not list(out.rglob(".*.tmp"))


# -- train -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_args(tmp_path_factory, tiny_whisper_dir, small_corpus):
    from probekit.corpus.model import Corpus

    root = tmp_path_factory.mktemp("kill-train")
    # each real speaker split in two pseudo-speakers: three disjoint speaker sets need 3
    utts = [dataclasses.replace(u, speaker=f"{u.speaker}-{i % 2}")
            for i, u in enumerate(small_corpus)]
    manifest = Corpus(utts, root=small_corpus.root).save(root / "corpus")
    argv = lambda out: ["-q", "train", "--corpus", str(manifest), "--out", str(out),  # noqa: E731
                        "--model", str(tiny_whisper_dir), "--method", "lora", "--steps", "2",
                        "--batch-size", "4", "--val-speakers", "1", "--test-speakers", "0.34",
                        "--cpu", "--no-progress", "--max-new-tokens", "3"]
    assert main(argv(root / "ref")) == 0
    return argv, root / "ref"


TRAIN_POINTS = {
    "first step logged": lambda out: (out / "log.jsonl").is_file() and
    (out / "log.jsonl").read_text().count("\n") >= 1,
    "checkpoint": lambda out: (out / "checkpoint.pt").is_file(),
    "adapters saved": lambda out: (out / "final" / "adapter_model.safetensors").is_file(),
}


@pytest.mark.parametrize("point", sorted(RNG.sample(sorted(TRAIN_POINTS), 2)))
def test_train_killed_then_rerun_gives_the_same_adapters(point, train_args, tmp_path):
    from safetensors.numpy import load_file

    argv, ref = train_args
    out = tmp_path / "run"
    print(f"killing the training run when its {point} appears")
    assert _run_and_kill(argv(out), lambda: TRAIN_POINTS[point](out)) == -signal.SIGKILL
    assert main(argv(out)) == 0  # no --overwrite
    a = load_file(out / "final" / "adapter_model.safetensors")
    b = load_file(ref / "final" / "adapter_model.safetensors")
    assert sorted(a) == sorted(b)
    for k in b:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, rtol=0, err_msg=k)
    for f in sorted(ref.glob("transcripts*.csv")):
        pd.testing.assert_frame_equal(pd.read_csv(out / f.name), pd.read_csv(f))
    assert not list(out.rglob(".*.tmp"))


# -- the helper --------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    from probekit.atomic import savefig, to_csv, write_text

    p = tmp_path / "t.csv"
    write_text(p, "old\n")

    class Boom(pd.DataFrame):
        def to_csv(self, path, **kw):
            Path(path).write_text("half a ta")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        to_csv(Boom({"a": [1]}), p, index=False)
    assert p.read_text() == "old\n" and [f.name for f in tmp_path.iterdir()] == ["t.csv"]
    # figures: the same bytes twice (no dates, salted SVG ids)
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    a, b = (savefig(fig, tmp_path / f"{n}.svg").read_bytes() for n in "ab")
    assert a == b
