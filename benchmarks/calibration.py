"""Calibration of every p-value, interval and typed label the bias report prints.

Each design simulates results tables (and, for the typing, phone embeddings) with the grid's
repeated-split design through :mod:`probekit.testing.simulate`, runs the public API on them and
counts rejections (null designs), coverage of 95% intervals, and detections (planted effects).

Null designs (:data:`NULL_DESIGNS`; ``--draws`` analyses each, 400 by default), every one at 5
and at 13 layers (error rising 0.15 -> 0.45), 4 groups x 10 speakers and 10 splits unless
said:

* ``a``: parity;  ``b``: one group with 6x the between-speaker variance at equal means;
* ``c``: probes trained on 3 speakers per group with a large training-draw offset (sd 0.04);
* ``d``: 3 groups;  ``few``: 6 speakers per group (3 test speakers of a group per split);
* ``infl6few``: 6x variance *and* 3 test speakers per split;
* ``unbal``: unbalanced groups of 3, 6, 10 and 20 speakers;  ``k3``: 3 splits (the CLI default);
* ``e``: global null over 12 layers x 4 groups for the family-wise and typing claims.

Keys ``reject_<design><L>_<test>`` (``L`` = 5 or 13; ``a5``, ``b``, ``c``, ``d`` keep their
old names at 5 layers and ``L13_infl6`` is ``b`` at 13), ``cover_<design>_<interval>``,
``fwer_<design>_<family>``.

Typing through *real* LDA probes on simulated embeddings (the grid's own splits, training sets
and scoring: :func:`probekit.testing.simulate.simulate_probe_study`): group-specific structure at
parity, accent-like and channel-like (``typed_systematic_parity_accent``,
``typed_systematic_parity_channel``, with ``structure_parity_*`` showing the structure was
there), and a planted systematic bias against one group (``power_typed_systematic_accent``:
that group's accent 1.0 against 0.5 for the others). On simulated error tables: a group whose
own probe closes a 0.15 gap (``typed_systematic_offset``), a noisier group (2x spread,
0.4 error per unit log spread: ``typed_random_dispersion_only``), a gap growing with the
error (``power_gap_*``).

Other modules add their keys through :data:`EXTRA_DESIGNS`: each is a module in
``benchmarks/`` with ``run(n_draws: int, seed: int) -> dict[str, float]``, imported and run
in order when present. Ends with one ``BENCH`` line. Run:
``python benchmarks/calibration.py [--draws N] [--only a5,L13_infl6,...]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from probekit.bias import cross_group_transfer, layerwise_bias, type_groups
from probekit.bias.dispersion import speaker_dispersion
from probekit.testing.simulate import (result_speakers, simulate_embeddings, simulate_probe_study,
                                    simulate_results, speaker_scales)

ALPHA = 0.05
SPLITS = tuple(range(10))
SETS = lambda G: ["all", "all-matched"] + [f"g{i}" for i in range(G)]
_INFL6 = {"variance_inflation": {"g1": 6.0}}
#: name -> keyword arguments of :func:`null_design` (each at 5 and 13 layers).
NULL_DESIGNS = {
    "a5": {"L": 5}, "a13": {"L": 13},
    "b": {"L": 5, **_INFL6}, "L13_infl6": {"L": 13, **_INFL6},
    "c": {"L": 5, "split_sd": 0.04, "spk": 6}, "c13": {"L": 13, "split_sd": 0.04, "spk": 6},
    "d": {"L": 5, "G": 3}, "d13": {"L": 13, "G": 3},
    "few5": {"L": 5, "spk": 6}, "few13": {"L": 13, "spk": 6},
    "infl6few5": {"L": 5, "spk": 6, **_INFL6}, "infl6few13": {"L": 13, "spk": 6, **_INFL6},
    "unbal5": {"L": 5, "spk": (3, 6, 10, 20)}, "unbal13": {"L": 13, "spk": (3, 6, 10, 20)},
    "k3_5": {"L": 5, "splits": (0, 1, 2)}, "k3_13": {"L": 13, "splits": (0, 1, 2)},
}
#: Modules of ``benchmarks/`` whose ``run(n_draws, seed) -> dict`` adds keys to the BENCH
#: line, tried in order (absent ones are skipped with a note).
EXTRA_DESIGNS = ["calibration_paired", "calibration_counts", "calib_paired", "calib_findings"]


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
                                         speaker_names=result_speakers(G, spk),
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


def probe_typing(draws, seed=0, **embedding_kw):
    """Typed shares through real LDA probes (:func:`simulate_probe_study`: 4 groups x 8
    speakers, 5 splits, 2 layers)."""
    rows = []
    for d in range(draws):
        res, disp = simulate_probe_study(random_state=seed + d, n_layers=2, **embedding_kw)
        ty = type_groups(res, dispersion=disp, alpha=ALPHA, n_perm=199, seed=d)
        rows.append(ty[["group", "type", "worse", "systematic", "random", "group_structure"]]
                    .assign(draw=d))
    return pd.concat(rows, ignore_index=True)


def parity_structure(draws):
    """Group-specific structure at parity (accent-like 0.5, channel-like 0.6) and a planted
    systematic bias against g0 (accent 1.0 against 0.5 for the others)."""
    out = {}
    for kind, kw in (("accent", {"accent": 0.5}), ("channel", {"channel": 0.6})):
        ty = probe_typing(draws, seed=1000, **kw)
        out[f"typed_systematic_parity_{kind}"] = float(ty["systematic"].mean())
        out[f"typed_any_parity_{kind}"] = float((ty["type"] != "neither").mean())
        out[f"fwer_parity_{kind}_typed"] = float(ty.groupby("draw")["type"]
                                                 .apply(lambda t: (t != "neither").any()).mean())
        out[f"structure_parity_{kind}"] = float(ty["group_structure"].mean())
    ty = probe_typing(draws, seed=2000, accent={"g0": 1.0, "g1": 0.5, "g2": 0.5, "g3": 0.5})
    g0, rest = ty[ty["group"] == "g0"], ty[ty["group"] != "g0"]
    out.update({"power_typed_systematic_accent": float(g0["systematic"].mean()),
                "power_worse_accent": float(g0["worse"].mean()),
                "reject_accent_others_typed": float((rest["type"] != "neither").mean())})
    return out


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

    for name, kw in NULL_DESIGNS.items():
        if want(name):
            step(name, lambda: null_design(name, n, **kw))
    if want("e"):
        def e():
            ty, anyl = typing_design(n, L=12)
            per = lambda col: float(ty.groupby(ty.index // (4 * 12))[col].any().mean())
            return {"fwer_e_typed": anyl, "fwer_e_worse": per("worse"),
                    "fwer_e_systematic": per("systematic"), "fwer_e_random": per("random")}
        step("e", e)
    if want("parity"):
        step("parity", lambda: parity_structure(max(n // 4, 25)))
    if want("power"):
        def pw():
            ty, _ = typing_design(n, offset={"g2": 0.15}, advantage={"g2": 0.15})
            g2 = ty[ty["group"] == "g2"]
            ty2, _ = typing_design(n, inflation={"g1": 2.0}, noise_effect=0.4)
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
    for mod in EXTRA_DESIGNS:
        if want(mod):
            try:
                m = __import__(mod)
            except ImportError:
                print(f"[{mod}] not present: skipped", file=sys.stderr)
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
