"""One training step under DDP vs on the whole batch in one process (an equivalence check).

:func:`one_step` builds a :class:`~training.trainer.Trainer` on a model folder and a corpus,
takes one optimizer step with each named objective and returns the adapter weights and the
learning rate after it. ``tests/training/test_ddp.py`` runs it in one process and in two gloo
processes (:func:`spawn_check`); the parameters agree only if the group risks (hard-max DRO)
and the IRM gradients are summed over processes before the max and the penalty, and the
learning rate agrees only if the scheduler steps once per optimizer step.

AdamW's first step is ``lr * sign(g)`` to within ``eps``, which would hide a gradient that
is off by a factor; the check therefore swaps in plain SGD, whose step is ``-lr * g``.
"""

from __future__ import annotations

import os
from unittest import mock

import torch

__all__ = ["one_step", "spawn_check", "shard_worst_differs"]


def _sgd(params, lr, weight_decay=0.0):
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)


def _corpus(corpus):
    from probekit.corpus.model import Corpus

    return corpus if isinstance(corpus, Corpus) else Corpus.load(corpus)


def _trainer(model_dir, corpus, out_dir, name, batch_size, seed):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from training.adapters import AdapterConfig, inject_adapters
    from training.objectives import build_objective
    from training.config import TrainConfig
    from training.trainer import Trainer

    model = WhisperForConditionalGeneration.from_pretrained(model_dir)
    proc = WhisperProcessor.from_pretrained(model_dir)
    inject_adapters(model, AdapterConfig(r=4, lora_alpha=8, dropout=0.0), seed=0)
    with torch.no_grad():  # non-zero B, so A gets a gradient too
        g = torch.Generator().manual_seed(1)
        for k, p in model.named_parameters():
            if "lora_B" in k:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    cfg = TrainConfig(out_dir=os.path.join(out_dir, name), steps=1, batch_size=batch_size,
                      lr=1.0, warmup_steps=4, max_grad_norm=0.0, progress=False,
                      save_every=1000, seed=seed, cpu=True)
    with mock.patch("torch.optim.AdamW", _sgd):
        return Trainer(model, proc, build_objective(name), _corpus(corpus), cfg)


def shard_worst_differs(model_dir: str, corpus, out_dir: str, seed: int, batch_size: int = 4,
                        world: int = 2) -> bool:
    """Whether the first batch's worst group differs between some shard and the whole batch
    (then a per-shard hard max gives a different step, so the check can fail)."""
    from training.data import collate
    from training.objectives import utterance_risks

    tr = _trainer(model_dir, corpus, out_dir, "group_dro", batch_size, seed)
    utts = [tr.train_corpus[i] for i in tr.sampler.batch(0)]
    b = collate(utts, tr.audio, tr.processor.feature_extractor, tr.processor.tokenizer,
                tr.raw.config.decoder_start_token_id, prefix=tr.prefix)
    with torch.no_grad():
        r = utterance_risks(tr.raw.eval()(input_features=b["input_features"],
                                          decoder_input_ids=b["decoder_input_ids"]).logits,
                            b["labels"]).tolist()
    groups = [u.group(tr.cfg.attribute) for u in utts]

    def worst(ix):
        means: dict[str, list[float]] = {}
        for i in ix:
            means.setdefault(groups[i], []).append(r[i])
        return max(means, key=lambda k: sum(means[k]) / len(means[k]))

    whole = worst(range(len(utts)))
    return any(worst(range(k, len(utts), world)) != whole for k in range(world))


def one_step(model_dir: str, corpus, out_dir: str, objectives=("group_dro", "irm"),
             batch_size: int = 4, seed: int = 0) -> dict:
    """``{objective: {"weights": {name: tensor}, "lr": float}}`` after one step each.

    ``corpus``: a :class:`~probekit.corpus.Corpus` or the path of its saved manifest.
    """
    from training.adapters.lora import adapter_state_dict

    torch.set_num_threads(1)
    result = {}
    for name in objectives:
        tr = _trainer(model_dir, corpus, out_dir, name, batch_size, seed)
        tr.train_step()
        result[name] = {"weights": adapter_state_dict(tr.raw), "lr": tr.sched.get_last_lr()[0]}
    return result


def _worker(rank: int, world: int, port: int, args: tuple, result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    res = one_step(*args)
    if rank == 0:
        torch.save(res, result_path)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def spawn_check(model_dir: str, corpus, out_dir: str, world: int = 2,
                objectives=("group_dro", "irm"), batch_size: int = 4, seed: int = 0) -> dict:
    """:func:`one_step` in ``world`` gloo processes (CPU); rank 0's result."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = os.path.join(out_dir, "ddp_result.pt")
    if not isinstance(corpus, (str, os.PathLike)):
        corpus = str(corpus.save(os.path.join(out_dir, "corpus", "manifest.jsonl")))
    args = (model_dir, corpus, os.path.join(out_dir, "ddp"), tuple(objectives), batch_size,
            seed)
    mp.spawn(_worker, args=(world, port, args, path), nprocs=world, join=True)
    return torch.load(path, weights_only=False)
