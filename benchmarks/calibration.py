"""Calibration of every p-value, interval and typed label the bias report prints.

Each design simulates results tables (and, for the typing, phone embeddings) with the grid's
repeated-split design through :mod:`probekit.bias.simulate`, runs the public API on them and
counts rejections (null designs), coverage of 95% intervals, and detections (planted effects).

Designs (``--draws`` analyses each, 400 by default):

* ``a5`` / ``a13``: parity, error rising across 5 / 13 layers (0.15 -> 0.45);
* ``b``: unequal speaker variance at equal means (one group with 6x the between-speaker variance);
* ``c``: probes trained on few speakers: a large training-draw offset per probe and split;
* ``d``: 3 groups with 5 test speakers per group in each split;
* ``e``: global null over 12 layers x 4 groups for the family-wise claims (typing included);
* power: a planted systematic offset (own-group probe closes a 0.10 gap), a dispersion-only
  group (error +~0.09 from noisier embeddings), a gap that grows with the error.

Ends with one ``BENCH`` line: ``reject_<design>_<test>``, ``cover_<design>_<interval>``,
``fwer_<design>_<family>``, ``power_<design>_<test>``, ``typed_random_dispersion_only``,
``typed_systematic_offset`` (rates in [0, 1]), plus the paired before/after and count-model
designs when their modules are present. Run: ``python benchmarks/calibration.py [--draws N]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from probekit.bias import cross_group_transfer, layerwise_bias, type_groups
from probekit.bias.dispersion import speaker_dispersion
from probekit.bias.simulate import simulate_embeddings, simulate_results, speaker_scales

ALPHA = 0.05
SPLITS = tuple(range(10))
SETS = lambda G: ["all", "all-matched"] + [f"g{i}" for i in range(G)]


def _table(draw, *, G=4, spk=10, L=5, base=None, splits=SPLITS, **kw):
    base = np.linspace(0.15, 0.45, L) if base is None else base
    return simulate_results(n_groups=G, speakers_per_group=spk, n_layers=L, seeds=splits,
                            train_sets=kw.pop("train_sets", SETS(G)), base_error=base,
                            items_per_speaker=kw.pop("items", 80), concentration=kw.pop("conc", 30),
                            split_sd=kw.pop("split_sd", 0.01), include_all_rows=False,
                            interaction_sd=kw.pop("interaction_sd", 0.015),
                            random_state=draw, **kw)


def _dispersion(draw, scales, *, G, spk, L):
    """Per-speaker dispersion frames of ``L`` simulated layers (nearest-centroid error ~20%)."""
    out = []
    for li in range(L):
        X, y, meta = simulate_embeddings(n_groups=G, speakers_per_group=spk, n_phones=8,
                                         tokens_per_phone=12, dim=12, phone_spread=1.0,
                                         noise=1.2, scales=scales, utterances_per_speaker=4,
                                         random_state=10_000 * draw + li)
        out.append(speaker_dispersion(X, y, meta).assign(layer=f"layer{li}",
                                                         group_attribute="accent"))
    return pd.concat(out, ignore_index=True)


def _layerwise(df, draw):
    return layerwise_bias(df, n_boot=199, n_perm=199, alpha=ALPHA, seed=draw)


def _cover(c, stat, truth):
    x = c[c["statistic"] == stat]
    ok = x["ci_low"].notna()
    t = truth(x[ok]) if callable(truth) else truth
    return float(((x.loc[ok, "ci_low"] <= t) & (t <= x.loc[ok, "ci_high"])).mean())


def null_design(name, draws, **kw):
    L = kw.get("L", 5)
    base = np.linspace(0.15, 0.45, L)
    rec = {k: [] for k in ("worse", "gap", "trend", "trend_raw", "own", "cover_group",
                           "cover_overall", "cover_own", "fwer_worse", "fwer_gap")}
    for d in range(draws):
        df = _table(d, **kw)
        lw = _layerwise(df, d)
        c = lw.curves
        g = c[c["statistic"].str.startswith("group:")]
        rec["worse"].append(float((g["p_value"] <= ALPHA).mean()))
        rec["fwer_worse"].append(float((g["p_fwer"] <= ALPHA).any()))
        f = c[c["statistic"] == "max_abs_t"]
        rec["gap"].append(float((f["p_value"] <= ALPHA).mean()))
        rec["fwer_gap"].append(float((f["p_fwer"] <= ALPHA).any()))
        s = lw.summary.set_index("bias_measure")
        rec["trend"].append(float(s.loc["between_var", "p_value"] <= ALPHA))
        rec["trend_raw"].append(float(s.loc["difference", "p_value"] <= ALPHA))
        truth = lambda x: base[x["layer_index"].to_numpy()]
        rec["cover_group"].append(float(np.mean([_cover(c, st, truth) for st in
                                                 g["statistic"].unique()])))
        rec["cover_overall"].append(_cover(c, "overall", truth))
        o = cross_group_transfer(df, n_boot=50, n_perm=50, alpha=ALPHA, seed=d).own_vs_broad
        o = o[(o["reference"] == "all-matched") & (o["group"] != "(pooled)")]
        rec["own"].append(float((o["p_value"] <= ALPHA).mean()))
        rec["cover_own"].append(float(((o["ci_low"] <= 0) & (0 <= o["ci_high"])).mean()))
    m = {k: float(np.mean(v)) for k, v in rec.items()}
    out = {f"reject_{name}_worse": m["worse"], f"reject_{name}_gap": m["gap"],
           f"reject_{name}_trend": m["trend"], f"reject_{name}_trend_difference": m["trend_raw"],
           f"reject_{name}_own": m["own"], f"cover_{name}_group_error": m["cover_group"],
           f"cover_{name}_overall": m["cover_overall"], f"cover_{name}_own": m["cover_own"]}
    if name.startswith("a") or name == "e":
        out.update({f"fwer_{name}_worse": m["fwer_worse"], f"fwer_{name}_gap": m["fwer_gap"]})
    return out


def typing_design(draws, *, G=4, spk=10, L=5, inflation=None, offset=None, advantage=None,
                  noise_effect=0.2, scale_sd_inflation=None):
    """Share of (draw, layer) cells typed each way, per group, and 'any label' per draw."""
    types, anylabel = [], []
    for d in range(draws):
        sc = speaker_scales(G, spk, dispersion_inflation=inflation,
                            scale_sd_inflation=scale_sd_inflation, random_state=d)
        df = _table(d, G=G, spk=spk, L=L, base=np.full(L, 0.3), group_offset=offset,
                    own_group_advantage=advantage, scales=sc, noise_effect=noise_effect,
                    items=150)
        ty = type_groups(df, dispersion=_dispersion(d, sc, G=G, spk=spk, L=L), alpha=ALPHA,
                         n_perm=199, seed=d)
        types.append(ty[["group", "type", "worse", "systematic", "random"]])
        anylabel.append(float((ty["type"] != "neither").any()))
    return pd.concat(types, ignore_index=True), float(np.mean(anylabel))


def power_gap(draws):
    """A group offset that grows with the error across 5 layers."""
    L = 5
    hits = {"gap": [], "worse": [], "trend": []}
    for d in range(draws):
        df = _table(d, L=L, group_offset={"g1": 0.10}, offset_profile=np.linspace(0.2, 1, L))
        lw = _layerwise(df, d)
        c = lw.curves
        top = c[(c["statistic"] == "max_abs_t") & (c["layer_index"] == L - 1)]
        hits["gap"].append(float(top["p_fwer"].iloc[0] <= ALPHA))
        g1 = c[(c["statistic"] == "group:g1") & (c["layer_index"] == L - 1)]
        hits["worse"].append(float(g1["p_fwer"].iloc[0] <= ALPHA))
        s = lw.summary.set_index("bias_measure")
        hits["trend"].append(float(s.loc["between_var", "p_value"] <= ALPHA))
    return {f"power_gap_{k}": float(np.mean(v)) for k, v in hits.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--only", default="", help="comma-separated parts to run (default all)")
    args = ap.parse_args(argv)
    n = args.draws
    only = set(filter(None, args.only.split(",")))
    want = lambda p: not only or p in only
    res, t0 = {}, time.time()

    def step(label, fn):
        t = time.time()
        out = fn()
        res.update(out)
        print(f"[{time.time() - t0:6.0f} s] {label}: " +
              " ".join(f"{k}={v:.3f}" for k, v in out.items()), file=sys.stderr, flush=True)

    if want("a5"):
        step("a5", lambda: null_design("a5", n, L=5))
    if want("a13"):
        step("a13", lambda: null_design("a13", n, L=13))
    if want("b"):
        step("b", lambda: null_design("b", n, variance_inflation={"g1": 6.0}))
    if want("c"):
        step("c", lambda: null_design("c", n, split_sd=0.04, spk=6))
    if want("d"):
        step("d", lambda: null_design("d", n, G=3))
    if want("e"):
        def e():
            ty, anyl = typing_design(n, L=12)
            per = lambda col: float(ty.groupby(ty.index // (4 * 12))[col].any().mean())
            return {"fwer_e_typed": anyl, "fwer_e_worse": per("worse"),
                    "fwer_e_systematic": per("systematic"), "fwer_e_random": per("random")}
        step("e", e)
    if want("power"):
        def pw():
            ty, _ = typing_design(n, offset={"g2": 0.10}, advantage={"g2": 0.10})
            g2 = ty[ty["group"] == "g2"]
            ty2, _ = typing_design(n, inflation={"g1": 1.5})
            g1 = ty2[ty2["group"] == "g1"]
            others = ty2[ty2["group"] != "g1"]
            return {"typed_systematic_offset": float((g2["type"] == "systematic").mean()),
                    "typed_random_dispersion_only": float((g1["type"] == "random").mean()),
                    "typed_systematic_dispersion_only": float(g1["systematic"].mean()),
                    "typed_random_offset": float(g2["random"].mean()),
                    "reject_power_other_groups_typed": float((others["type"] != "neither").mean()),
                    "power_offset_worse": float(g2["worse"].mean())}
        step("power", pw)
        step("power_gap", lambda: power_gap(n))
    for mod in ("calibration_paired", "calibration_counts"):
        if want(mod):
            try:
                m = __import__(mod)
            except ImportError:
                continue
            step(mod, lambda: m.run(n_draws=n, seed=0))
    res["draws"] = n
    res["wall_s"] = round(time.time() - t0, 1)
    print("BENCH " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in res.items()))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    raise SystemExit(main())
