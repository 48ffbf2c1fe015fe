"""Rows of the results table from a cell's test errors (classification and CTC), shared by
the grid's per-cell path and its shared-statistics path (:mod:`probekit.probes.grid_stats`)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class TestUnits:
    """The test rows' (group, speaker) units, sorted as the table lists them: the per-speaker
    and per-group error rows of every cell scored on these rows come from bincounts."""

    def __init__(self, meta: pd.DataFrame, test: np.ndarray, group_col: str):
        tm = meta.iloc[test]
        g = tm[group_col].astype(str).to_numpy()
        s = tm["speaker"].astype(str).to_numpy()
        pairs, self.pair = np.unique(np.char.add(np.char.add(g, "\x01"), s), return_inverse=True)
        self.pairs = [tuple(p.split("\x01", 1)) for p in pairs.tolist()]
        self.groups, self.group = np.unique(g, return_inverse=True)
        self.n_pair = np.bincount(self.pair, minlength=len(pairs))
        self.n_group = np.bincount(self.group, minlength=len(self.groups))

    def rows(self, wrong: np.ndarray, base: dict) -> list[dict]:
        """Error rate per test speaker and per test group (``unit="all"``); n = tokens."""
        w = np.asarray(wrong, dtype=float)
        per_pair = np.bincount(self.pair, weights=w, minlength=len(self.pairs)) / self.n_pair
        per_group = np.bincount(self.group, weights=w, minlength=len(self.groups)) / self.n_group
        out = [{**base, "test_group": g, "unit": spk, "metric": "error", "value": float(v),
                "n": int(n)} for (g, spk), v, n in zip(self.pairs, per_pair, self.n_pair)]
        out += [{**base, "test_group": g, "unit": "all", "metric": "error", "value": float(v),
                 "n": int(n)} for g, v, n in zip(self.groups.tolist(), per_group, self.n_group)]
        return out


def _asr_rows(meta: pd.DataFrame, test: np.ndarray, hyps: list[str], group_col: str,
              base: dict) -> list[dict]:
    """CER and WER per test speaker and per test group; n = reference characters / words."""
    from probekit.probes.ctc import aggregate_errors, ctc_errors

    tm = meta.iloc[test]
    errs = ctc_errors(hyps, tm["text"].tolist(), ids=tm["utt_id"].tolist())
    errs["speaker"] = tm["speaker"].to_numpy()
    errs["group"] = tm[group_col].astype(str).to_numpy()
    rows = []
    for by, unit_of in ((["group", "speaker"], lambda k: k[1]), (["group"], lambda k: "all")):
        agg = aggregate_errors(errs, by=by).reset_index()
        for _, r in agg.iterrows():
            key = tuple(r[c] for c in by)
            for metric, n_col in (("cer", "n_chars"), ("wer", "n_words")):
                if r[n_col] > 0:
                    rows.append({**base, "test_group": key[0], "unit": unit_of(key), "metric": metric,
                                 "value": float(r[metric]), "n": int(r[n_col])})
    return rows
