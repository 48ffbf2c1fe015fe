"""Two processes under torchrun give the same store as one; the CLI end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from probekit.cli import main


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_two_ranks_equal_one(tiny_model_dir, small_corpus, tmp_path, capsys):
    common = ["--encoder", str(tiny_model_dir), "--corpus", str(small_corpus.root),
              "--shard-size", "3", "--pooling", "utterance,phone,frames", "--no-progress"]
    assert main(["extract", *common, "--out", str(tmp_path / "one")]) == 0
    printed = capsys.readouterr().out
    assert f"store: {tmp_path / 'one'}" in printed and "MB" in printed

    # torchrun sets OMP_NUM_THREADS=1 unless told; match this process so kernels sum alike.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "probekit", "extract", *common, "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two) and len([k for k in one if k.endswith(".npy")]) == 6 * 4 * 3
    assert one == two


def test_cli_errors_are_one_line(tiny_model_dir, small_corpus, tmp_path, capsys):
    rc = main(["extract", "--encoder", str(tiny_model_dir), "--corpus", str(small_corpus.root),
               "--out", str(tmp_path / "s"), "--layers", "conv,block9", "--no-progress"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("probekit: error:")]
    assert rc == 2 and len(errors) == 1 and "unknown layer 'block9'" in errors[0]
    assert "Traceback" not in err
