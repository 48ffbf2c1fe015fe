"""Rows of the results table from a cell's test errors (classification and CTC), shared by
the grid's per-cell path and its shared-statistics path (:mod:`probekit.probes.grid_stats`)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _error_rows(meta: pd.DataFrame, test: np.ndarray, wrong: np.ndarray, group_col: str,
                base: dict) -> list[dict]:
    tm = meta.iloc[test]
    frame = pd.DataFrame({"speaker": tm["speaker"].to_numpy(), "group": tm[group_col].astype(str).to_numpy(),
                          "wrong": wrong.astype(float)})
    rows = []
    for by in (["group", "speaker"], ["group"]):
        agg = frame.groupby(by, sort=True)["wrong"].agg(["mean", "size"])
        for k, (value, n) in zip(agg.index, agg.to_numpy()):
            g, unit = (k if len(by) == 2 else (k, "all"))
            rows.append({**base, "test_group": g, "unit": unit, "metric": "error",
                         "value": float(value), "n": int(n)})
    return rows


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
