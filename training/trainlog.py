"""What the trainer logs beyond the objective's terms: the weighted terms' shares of the
loss and of its gradient norm, and ``log.csv`` rebuilt from ``log.jsonl``."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import torch

__all__ = ["term_shares_of", "rebuild_csv"]


def term_shares_of(out: dict, params: list) -> dict:
    """``share_<term>``: |weighted term| / sum over terms; ``gshare_<term>``: the norm of its
    gradient w.r.t. ``params`` (the adapters) / the sum of those norms. Terms are the
    objective's ``w_*`` entries (the fused objective's weighted terms); ``{}`` for fewer
    than two. One extra backward per term (``retain_graph``; ``.grad`` is not touched)."""
    terms = {k[2:]: v for k, v in out.items() if k.startswith("w_")}
    if len(terms) < 2:
        return {}
    total = sum(abs(float(v.detach())) for v in terms.values()) or 1.0
    res, norms = {}, {}
    for k, v in terms.items():
        res[f"share_{k}"] = abs(float(v.detach())) / total
        if not v.requires_grad:
            norms[k] = 0.0
            continue
        grads = torch.autograd.grad(v, params, retain_graph=True, allow_unused=True)
        norms[k] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads
                                        if g is not None)))
    gtot = sum(norms.values()) or 1.0
    res.update({f"gshare_{k}": n / gtot for k, n in norms.items()})
    return {k: torch.tensor(v) for k, v in res.items()}


def rebuild_csv(folder) -> None:
    """``log.csv`` from ``log.jsonl``: one column per key over all rows (train and
    validation rows have different keys), empty where a row has none; atomic."""
    folder = Path(folder)
    path = folder / "log.jsonl"
    if not path.is_file():
        return
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    cols = list(dict.fromkeys(k for r in rows for k in r))
    tmp = folder / f"log.csv.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, folder / "log.csv")
