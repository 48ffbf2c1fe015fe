"""kill -9 at many random points, then a rerun without --overwrite (issue 21 item 6).

For ``probekit report`` (and with ``--study`` a tiny ``probekit study run``): one uninterrupted
run is the baseline (its time and its files); then, ``--kills`` times, the command is started
in a child process, killed with SIGKILL at a random moment within the baseline's time, and
rerun in-process. Counts the reruns whose files equal the baseline's (report.md, report.html,
the at-a-glance PNG/SVG; for a study also analysis/*.csv) and prints the rerun time as a
ratio of an uninterrupted in-process run's time, measured in the same run.

    python benchmarks/kill_resume.py --kills 20
    python benchmarks/kill_resume.py --kills 6 --study
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probekit.cli import main  # noqa: E402

REPORT_FILES = ("report.md", "report.html", "report_figures/at_a_glance.png",
                "report_figures/at_a_glance.svg")


def _child(argv: list[str]) -> subprocess.Popen:
    script = f"import sys\nfrom probekit.cli import main\nsys.exit(main({argv!r}))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _files(out: Path, study: bool) -> dict[str, str]:
    names = list(REPORT_FILES if not study else ("report.md",))
    if study:
        names += [str(p.relative_to(out)) for p in sorted(out.glob("analysis/*.csv"))]
    got = {}
    for n in names:
        p = out / n
        got[n] = p.read_bytes().decode("latin-1").replace(str(out), "<OUT>") if p.exists() else None
    return got


def _timed(argv: list[str]) -> float:
    t = time.perf_counter()
    assert main(argv) == 0, argv
    return time.perf_counter() - t


def run(kills: int, study: bool, seed: int) -> dict:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    os.environ.setdefault("PROBEKIT_CACHE_DIR", str(tmp / "cache"))
    if study:
        from probekit.testing.tiny_models import save_tiny_ssl

        model = save_tiny_ssl("wav2vec2", tmp / "w2v2")
        (tmp / "s.toml").write_text(textwrap.dedent(f"""
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
        argv = lambda out: ["-q", "study", "run", str(tmp / "s.toml"), "--out", str(out)]  # noqa: E731
    else:
        from probekit.testing.simulate import simulate_results
        from probekit.probes.results import ResultsTable

        df = simulate_results(n_groups=3, speakers_per_group=6, n_layers=3, seeds=(0, 1),
                              train_sets="full", group_offset={"g2": 0.2})
        ResultsTable(tmp / "results").append(df)
        assert main(["-q", "analyze", str(tmp / "results"), "--out", str(tmp / "analysis"),
                     "--n-boot", "30", "--n-perm", "49"]) == 0
        argv = lambda out: ["-q", "report", str(tmp / "analysis"), "--out", str(out)]  # noqa: E731
    t0 = time.perf_counter()
    proc = _child(argv(tmp / "clean"))  # the baseline: uninterrupted, in a child like the rest
    proc.wait()
    clean = time.perf_counter() - t0
    assert proc.returncode == 0
    want = _files(tmp / "clean", study)
    clean_in = _timed(argv(tmp / "clean-in"))  # in-process, like the reruns: the ratio's base
    same, reruns, killed = 0, [], 0
    for i in range(kills):
        out = tmp / f"k{i}"
        at = rng.uniform(0.05, 1.0) * clean
        proc = _child(argv(out))
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed += 1
        reruns.append(_timed(argv(out)))  # no --overwrite
        same += _files(out, study) == want
        print(f"kill {i}: at {at:.2f} s ({'killed' if proc.returncode < 0 else 'had finished'}), "
              f"rerun {reruns[-1]:.2f} s, {'same' if _files(out, study) == want else 'DIFFERENT'}")
    rerun = sorted(reruns)[len(reruns) // 2]
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return {"command": "study" if study else "report", "kills": kills, "killed": killed,
            "identical": same, "clean_child_s": round(clean, 2), "clean_s": round(clean_in, 2),
            "rerun_median_s": round(rerun, 2), "rerun_over_clean": round(rerun / clean_in, 3)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--study", action="store_true", help="a tiny study run instead of a report")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    r = run(a.kills, a.study, a.seed)
    print("BENCH " + " ".join(f"{k}={v}" for k, v in r.items()))
    sys.exit(0 if r["identical"] == r["kills"] else 1)
