"""Review defect 9 / issue 20: one step of hard-max Group-DRO, IRM (pairs estimator), SD
(synced token mean) and fused under DDP (2 gloo processes on the CPU) equals one step on the
whole batch in one process, and the warm-up schedule steps
once per optimizer step (accelerate's prepared scheduler stepped once per process)."""

import pytest
import torch

from probekit.testing.ddp_check import one_step, shard_worst_differs, spawn_check


@pytest.fixture(scope="module")
def four_speakers(small_corpus):
    return small_corpus.filter(speakers=small_corpus.speakers[:4])


def test_ddp_step_equals_the_whole_batch_step(tiny_whisper_dir, four_speakers, tmp_path):
    model = str(tiny_whisper_dir)
    # a batch whose shards disagree on the worst group, so a per-shard max would differ
    seed = next(s for s in range(10) if shard_worst_differs(model, four_speakers,
                                                            str(tmp_path / "probe"), s))
    names = ("group_dro", "irm", "sd", "fused")
    ref = one_step(model, four_speakers, str(tmp_path / "one"), objectives=names, seed=seed)
    ddp = spawn_check(model, four_speakers, str(tmp_path), objectives=names, seed=seed)
    for name in names:
        a, b = ref[name]["weights"], ddp[name]["weights"]
        assert set(a) == set(b)
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=2e-6, rtol=1e-4, msg=f"{name} {k}")
        # warm-up 4 steps: after one optimizer step the factor is 2/4 (3/4 if it stepped twice)
        assert ddp[name]["lr"] == pytest.approx(ref[name]["lr"]) == pytest.approx(0.5)
