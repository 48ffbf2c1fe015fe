"""Issue 20 (3): the fused objective is visible and switchable; the IRM estimator; the
importance weights of pooled terms under balanced sampling; the ERM + balanced control."""

import json

import pytest
import torch

from training.objectives import ObjectiveInput, build_objective, squared_logits
from training.objectives.irm import irm_terms


def _batch(seed=0, weights=None):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 5, 11, generator=g, requires_grad=True)
    labels = torch.randint(0, 11, (6, 5), generator=g)
    labels[0, 3:] = -100          # unequal lengths: token and utterance norms differ
    labels[4, 1:] = -100
    return ObjectiveInput(logits, labels, ["a", "a", "b", "b", "b", "c"], weights=weights)


def test_pairs_irm_estimator_is_the_mean_over_pairs_and_the_default_of_standalone_irm():
    from training.objectives.base import utterance_risks

    b = _batch()
    d = []
    for i in range(6):   # each utterance's derivative w.r.t. its own logit scale, one by one
        w = torch.ones((), requires_grad=True)
        (gi,) = torch.autograd.grad(utterance_risks(b.logits[i:i + 1] * w, b.labels[i:i + 1])[0], w)
        d.append(float(gi))
    pairs_a, pairs_b = d[0] * d[1], (d[2] * d[3] + d[2] * d[4] + d[3] * d[4]) / 3
    sq = [((d[0] + d[1]) / 2) ** 2, (sum(d[2:5]) / 3) ** 2, d[5] ** 2]
    assert float(irm_terms(b, "pairs")[1]) == pytest.approx((pairs_a + pairs_b) / 2, rel=1e-5)
    assert float(irm_terms(b, "squared")[1]) == pytest.approx(sum(sq) / 3, rel=1e-5)
    irm = build_objective("irm")
    assert irm.irm_estimator == "pairs"
    assert float(irm(b)["irm_penalty"]) == pytest.approx((pairs_a + pairs_b) / 2, rel=1e-5)


def test_fused_reaches_sd_norm_and_irm_estimator_and_returns_weighted_terms():
    b = _batch()
    tok, utt = float(squared_logits(b, "token")), float(squared_logits(b, "utterance"))
    assert tok != pytest.approx(utt)
    f = build_objective("fused", fused_sd_norm="utterance", fused_irm_estimator="pairs")
    out = f(b)
    assert float(out["sd_penalty"]) == pytest.approx(utt)
    assert float(out["irm_penalty"]) == pytest.approx(float(irm_terms(b, "pairs")[1]))
    w = {k: float(v) for k, v in out.items() if k.startswith("w_")}
    assert set(w) == {"w_erm", "w_dro", "w_sd", "w_irm"}
    assert sum(w.values()) == pytest.approx(float(out["loss"]))
    assert w["w_sd"] == pytest.approx(0.06 * utt)
    assert "fused_sd_norm=utterance" in repr(f) and "dro_mode" in repr(f)


def test_importance_weights_make_the_pooled_terms_weighted_means():
    from training.objectives.base import utterance_risks

    w = torch.tensor([1.0, 1.0, 2.0, 2.0, 2.0, 0.5])
    b, bw = _batch(), _batch(weights=w)
    r = utterance_risks(b.logits, b.labels).detach()
    assert float(bw.mean_risk(r)) == pytest.approx(float((w * r).sum() / w.sum()))
    assert float(b.mean_risk(r)) == pytest.approx(float(r.mean()))
    n = (b.labels != -100).sum(1).float()
    sq = (b.logits.detach().pow(2).mean(-1) * (b.labels != -100)).sum(1)
    assert float(squared_logits(bw)) == pytest.approx(float((w * sq).sum() / (w * n).sum()))
    erm = build_objective("fused")(bw)["erm"]
    assert float(erm) == pytest.approx(float((w * r).sum() / w.sum()))


def test_fused_logs_term_shares_and_the_balanced_erm_control_is_unweighted(
        tiny_whisper_dir, small_corpus, tmp_path):
    from training.adapters import AdapterConfig, inject_adapters
    from training.finetune import load_base, term_shares
    from training.trainer import TrainConfig, Trainer

    train = small_corpus.filter(accent=["es", "en-us"])
    kinds = {}
    for name, kw in (("fused", {}), ("erm_balanced", {}), ("erm", {}),
                     ("fused", {"importance_weights": False})):
        mdl, proc = load_base(str(tiny_whisper_dir))
        inject_adapters(mdl, AdapterConfig(r=2), seed=0)
        cfg = TrainConfig(out_dir=str(tmp_path / f"{name}{len(kinds)}"), steps=2, batch_size=4,
                          lr=1e-3, cpu=True, progress=False, **kw)
        tr = Trainer(mdl, proc, build_objective(name), train, cfg)
        kinds[(name, bool(kw))] = (tr.sampler_kind, tr.weighted)
        if name == "fused" and not kw:
            tr.fit()
            rows = [json.loads(x) for x in (tmp_path / "fused0" / "log.jsonl").read_text().split("\n")
                    if x]
            assert [("gshare_sd" in r) for r in rows] == [True, True]   # first and last step
            for r in rows:
                assert sum(r[f"gshare_{k}"] for k in ("erm", "dro", "sd", "irm")) == pytest.approx(1)
                assert sum(r[f"share_{k}"] for k in ("erm", "dro", "sd", "irm")) == pytest.approx(1)
            assert set(term_shares(tmp_path / "fused0" / "log.jsonl")) == {"step 1", "step 2"}
            header = (tmp_path / "fused0" / "log.csv").read_text().splitlines()[0].split(",")
            assert "gshare_irm" in header and "erm" in header
    assert kinds == {("fused", False): ("balanced", True), ("erm_balanced", False): ("balanced", False),
                     ("erm", False): ("uniform", False), ("fused", True): ("balanced", False)}
