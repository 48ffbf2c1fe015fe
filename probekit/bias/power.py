"""The smallest effect each report family had 80% power to detect at the analysis's design.

Next to "not detected" the report says how large an effect the design could have seen. For a
report slice the design is read from its tables (groups, distinct test speakers per group,
splits, layers, the overall error per layer, the share of a group's speakers tested per split)
and the simulator (:func:`probekit.testing.simulate.simulate_results`, speaker spread and items
per speaker at its defaults: our choice, ``docs/concepts.md``) plants, on a grid of sizes
from small to large, one effect per family:

* ``worse`` and ``unequal means``: one group's error raised by ``delta`` (absolute error rate)
  at every layer; detected when the layer curves' decision at the family's level names that
  group worse (``worse``) or the group means unequal (``unequal means``) at any layer;
* ``own vs broad``: every group's own probe ``delta`` better on its own speakers than the
  broad probe; detected when the pooled own-vs-broad test (Holm over layers) rejects at any
  layer.

The smallest grid size detected in at least 80% of ``draws`` simulated studies is the
``detectable_effect`` (NaN with a note when even the largest is not). Families without a
simulated effect here (trend, systematic, random) get a note saying so, never a number.
The grid is searched by bisection (power grows with the effect) and a size is decided as soon
as its draws settle it either way. Results are cached on disk per design (``$PROBEKIT_CACHE_DIR/power`` or the user cache).
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pandas as pd

from probekit.bias.metrics import group_of

log = logging.getLogger(__name__)

__all__ = ["design_of", "detectable_effect", "add_detectable_effects", "GRID", "DRAWS", "POWER",
           "SIMULATED"]

#: Effect sizes tried (absolute error rate), smallest first; the first with enough power wins.
GRID = (0.03, 0.06, 0.10, 0.15, 0.20, 0.30)
DRAWS = 8
POWER = 0.8
#: Families with a planted effect here, and the words for their effect size.
SIMULATED = {"worse": "one group worse by", "unequal means": "one group off the rest by",
             "own vs broad": "own-group probes better by"}
_VERSION = 1
_CURVES: dict = {}


def design_of(curves: pd.DataFrame, key: tuple) -> dict | None:
    """The simulation design of one (encoder, task, probe, metric, group_attribute) slice."""
    c = curves
    for col, v in zip(["encoder", "task", "probe", "metric", "group_attribute"], key):
        c = c[c[col].astype(str) == str(v)]
    g = c[c["statistic"].astype(str).map(group_of).notna()]
    ov = c[c["statistic"] == "overall"].sort_values("layer_index")
    if g.empty or ov.empty:
        return None
    n = g.groupby("statistic")["n_speakers"].max()
    per = g.groupby("statistic")["n_per_split"].median()
    spk = int(n.median())
    return {"groups": int(n.size), "speakers": max(spk, 2), "splits": int(ov["n_splits"].iloc[0]),
            "layers": int(len(ov)),
            "base": [round(float(np.clip(x, 0.02, 0.9)), 3) for x in ov["estimate"].fillna(0.3)],
            "test_speakers": round(float(np.clip((per / n.clip(lower=1)).median(), 0.05, 1.0)), 2)}


def _cache_file(design: dict, family: str, level: float):
    from probekit.cache import cache_root

    blob = json.dumps({"d": design, "f": family, "l": round(level, 6), "g": GRID, "n": DRAWS,
                       "v": _VERSION}, sort_keys=True)
    return cache_root() / "power" / (hashlib.sha1(blob.encode()).hexdigest()[:20] + ".json")


def _detected(design: dict, family: str, level: float, delta: float, draw: int) -> bool:
    from probekit.bias.inference import holm
    from probekit.bias.layerwise import layerwise_bias
    from probekit.testing.simulate import simulate_results
    from probekit.bias.transfer import cross_group_transfer

    G = design["groups"]
    kw = dict(n_groups=G, speakers_per_group=design["speakers"], n_layers=design["layers"],
              seeds=tuple(range(design["splits"])), base_error=np.asarray(design["base"]),
              test_speakers=design["test_speakers"], random_state=7919 * draw + 1)
    n_perm = int(max(99, np.ceil(2.0 / level)))
    if family in ("worse", "unequal means"):
        memo = (json.dumps(design, sort_keys=True), level, delta, draw)
        if memo not in _CURVES:  # both families read the same simulated studies
            df = simulate_results(train_sets=("all",), group_offset={"g0": delta}, **kw)
            _CURVES.clear() if len(_CURVES) > 256 else None
            _CURVES[memo] = layerwise_bias(df, n_boot=2, n_perm=n_perm, seed=draw).curves
        c = _CURVES[memo]
        stat = "group:g0" if family == "worse" else "max_abs_t"
        return bool((c.loc[c["statistic"] == stat, "p_fwer"] <= level).any())
    df = simulate_results(train_sets=["all"] + [f"g{i}" for i in range(G)],
                          own_group_advantage={f"g{i}": delta for i in range(G)}, **kw)
    o = cross_group_transfer(df, n_boot=2, n_perm=9, seed=draw).own_vs_broad
    o = o[(o["group"] == "(pooled)") & (o["reference"] == "all")]
    return bool((holm(o["p_less"].to_numpy(float)) <= level).any())


def detectable_effect(design: dict, family: str, level: float) -> float:
    """Smallest grid effect detected in >= 80% of ``DRAWS`` simulated studies (NaN: none).
    Cached on disk per (design, family, level)."""
    if family not in SIMULATED or design["splits"] < (2 if family == "own vs broad" else 1):
        return float("nan")
    path = _cache_file(design, family, level)
    try:
        return float(json.loads(path.read_text())["effect"])
    except (OSError, ValueError, KeyError):
        pass
    grid = [d for d in GRID if d + max(design["base"]) < 0.99]
    need = int(np.ceil(POWER * DRAWS))

    def powered(delta) -> bool:
        hits = 0
        for d in range(DRAWS):
            hits += _detected(design, family, level, delta, d)
            if hits >= need or hits + (DRAWS - d - 1) < need:  # decided either way
                break
        return hits >= need

    # bisection over the grid (power grows with the effect): about log2(len(GRID)) sizes
    lo, hi, found = 0, len(grid) - 1, float("nan")
    while lo <= hi:
        mid = (lo + hi) // 2
        if powered(grid[mid]):
            found, hi = grid[mid], mid - 1
        else:
            lo = mid + 1
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from probekit.atomic import write_text
        write_text(path, json.dumps({"effect": found, "design": design, "family": family,
                                     "level": level}))
    except OSError as exc:  # a read-only cache costs time, never the result
        log.warning("power cache not written (%s)", exc)
    return found


def add_detectable_effects(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``decision_families`` with ``detectable_effect`` and ``detectable_effect_note`` (the
    words the report prints next to "not detected")."""
    fam = tables.get("decision_families")
    if fam is None or fam.empty or "detectable_effect" in fam.columns:
        return tables
    eff, note = [], []
    for r in fam.itertuples(index=False):
        key = (r.encoder, r.task, r.probe, r.metric, r.group_attribute)
        if r.family not in SIMULATED:
            eff.append(np.nan)
            note.append("not simulated for this family")
            continue
        des = design_of(tables["layer_curves"], key)
        x = detectable_effect(des, r.family, float(r.level)) if des else np.nan
        eff.append(x)
        note.append(SIMULATED[r.family] if x == x else
                    f"more than {max(GRID):g} (absolute error; largest effect simulated)")
    return dict(tables, decision_families=fam.assign(detectable_effect=eff,
                                                     detectable_effect_note=note))
