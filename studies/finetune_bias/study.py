"""finetune_bias: zero-shot vs ERM-LoRA vs fused-LoRA vs MAS-LoRA, by accent, then the
layerwise probes before vs after.

    python -m studies.finetune_bias.study --preset tiny [--out DIR]

Steps: (1) split the synthetic corpus speaker- and sentence-disjointly (test = the speakers
reading ``test_blocks``; the native group and ``unseen_groups`` are never trained on);
(2) transcribe the test set zero-shot; (3) train ERM-LoRA, fused-objective LoRA (seed 000)
and MAS-LoRA (seed 003, ERM loss, one expert per trained accent) and transcribe with each
(MAS-LoRA accent-unknown = uniform mixture, and accent-known with the 1/d rule); (4) the
seeds' Table 1: WER per group, macro-WER and max-min gap over the trained accents, the native
group's WER change (forgetting) and the unseen accent's WER; (5) hand every adapted model back
to probekit (merged weights), extract stores for the base and each adapted encoder, run the
probe grid, and compare the layerwise bias curves (speaker-bootstrap CIs) before vs after.

Everything runs on synthetic espeak-ng speech: the outputs are demonstrations of the
pipeline, not findings about accented speech, and every report says so.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import os
import time
import tomllib
from pathlib import Path

import pandas as pd

DISCLAIMER = ("Synthetic speech (espeak-ng voices reading Harvard sentences): these numbers "
              "demonstrate the pipeline; they are not findings about real accented speech.")
METHODS = ("zero-shot", "erm-lora", "fused-lora", "mas-lora")
log = logging.getLogger("finetune_bias")


def load_config(preset: str, path: str | Path | None = None, **overrides) -> dict:
    path = Path(path) if path else Path(__file__).with_name("config.toml")
    presets = tomllib.loads(path.read_text())
    if preset not in presets:
        raise SystemExit(f"unknown preset {preset!r}; presets in {path}: {sorted(presets)}")
    return {**presets[preset], "preset": preset, **overrides}


def default_out(preset: str) -> Path:
    from probekit.corpus.synthetic import cache_root

    return cache_root().parent / "studies" / "finetune_bias" / preset


# -- data -----------------------------------------------------------------------------------
def make_splits(corpus, cfg: dict):
    """test: speakers reading ``test_blocks`` (all groups); train/val: the others, trained
    accents only. Speakers read one sentence block each, so this is speaker- and
    sentence-disjoint between train and test."""
    from probekit.corpus.synthetic import PRESETS, sentence_plan

    blocks = sentence_plan(PRESETS[cfg["corpus"]]) if cfg["corpus"] in PRESETS else None
    test_sids = {sid for b in cfg["test_blocks"] for sid, _ in blocks[b]}
    test_spk = {u.speaker for u in corpus if u.sentence_id in test_sids}
    test = corpus.filter(speakers=sorted(test_spk))
    if cfg.get("test_per_speaker"):
        keep = [u.id for s in test.speakers
                for u in [u for u in test if u.speaker == s][: cfg["test_per_speaker"]]]
        test = test.filter(ids=keep)
    rest = [s for s in corpus.speakers if s not in test_spk]
    pool = corpus.filter(speakers=rest)
    pool = pool.filter(ids=[u.id for u in pool if u.group("accent") in cfg["train_groups"]])
    val = None
    if cfg["val_per_group"]:
        train, val_full = pool.split(0.25, stratify="accent", seed=0)
        keep = []
        for g in cfg["train_groups"]:
            keep += [u.id for u in val_full if u.group("accent") == g][: cfg["val_per_group"]]
        val = val_full.filter(ids=keep)
        # sentence-disjoint too: no training utterance reads a validation sentence (model
        # selection must not reward memorised text)
        val_sids = {u.sentence_id for u in val if u.sentence_id is not None}
        train = train.filter(ids=[u.id for u in train if u.sentence_id not in val_sids])
    else:
        train = pool
    return train, val, test


#: Settings that change neither the trained adapters nor the transcripts of a method.
_NOT_RUN_KEYS = {"progress", "threads", "n_boot", "probe_tasks", "probe_seeds",
                 "probe_speakers_per_group"}


def _reset_if_config_changed(mdir: Path, cfg: dict) -> None:
    """A method's folder (adapters, checkpoint, transcripts) is reused only when it was made
    with the same settings (``run_config.json``); otherwise it is cleared, so e.g.
    ``--set steps=100`` retrains instead of reporting the old run."""
    import shutil

    key = {k: cfg[k] for k in sorted(cfg) if k not in _NOT_RUN_KEYS}
    stamp = mdir / "run_config.json"
    if mdir.exists() and (not stamp.exists()
                          or json.loads(stamp.read_text()) != json.loads(json.dumps(key))):
        log.info("%s was made with other settings: cleared", mdir)
        shutil.rmtree(mdir)
    mdir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(key, indent=1, default=str) + "\n")


# -- models ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _load_base(model_name: str):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from probekit.encoders.weights import resolve_whisper

    folder = Path(model_name)
    if not folder.is_dir():
        folder = resolve_whisper(model_name, sources=("local", "hf-cache", "package"))
    return (WhisperForConditionalGeneration.from_pretrained(folder).eval(),
            WhisperProcessor.from_pretrained(folder))


def load_base(cfg):
    """A fresh copy of the base model (loaded from disk once) and its processor."""
    model, proc = _load_base(cfg["model"])
    return copy.deepcopy(model), proc


def train_method(method: str, cfg: dict, train, val, out: Path):
    """Train (or reload a finished run of) one method; returns the adapted model."""
    from training.adapters import AdapterConfig, inject_adapters, load_adapters, save_adapters
    from training.objectives import build_objective
    from training.trainer import TrainConfig, Trainer

    model, proc = load_base(cfg)
    final = out / "final"
    if (final / "adapter_config.json").exists():
        return load_adapters(model, final).eval(), proc
    groups = list(cfg["train_groups"])
    adapter = AdapterConfig(experts=tuple(groups) if method == "mas-lora" else ())
    inject_adapters(model, adapter, seed=cfg.get("seed", 0))
    objective = build_objective("fused") if method == "fused-lora" else build_objective("erm")
    tc = TrainConfig(out_dir=str(out), steps=cfg["steps"], batch_size=cfg["batch_size"],
                     lr=cfg["lr"], eval_every=cfg["eval_every"], seed=cfg.get("seed", 0),
                     save_every=max(1, cfg["steps"] // 3), progress=cfg.get("progress", True))
    model = Trainer(model, proc, objective, train, tc, val=val).fit()
    save_adapters(model, final)
    return model.eval(), proc


def evaluate_method(method, model, proc, test, cfg, out: Path) -> dict[str, pd.DataFrame]:
    """Transcripts of the test set; MAS-LoRA also accent-known (1/d rule)."""
    from training.evaluate import transcribe

    runs = {method: None}
    if method == "mas-lora":
        runs[f"{method} (accent known, d={cfg['known_accent_d']:g})"] = cfg["known_accent_d"]
    frames = {}
    for name, d in runs.items():
        path = out / ("transcripts.csv" if d is None else "transcripts_known.csv")
        if path.exists():
            frames[name] = pd.read_csv(path, keep_default_na=False)
            continue
        df = transcribe(model, proc, test, max_new_tokens=cfg["max_new_tokens"],
                        known_accent_d=d, progress=cfg.get("progress", True))
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        frames[name] = df
    return frames


def wer_table(transcripts: dict[str, pd.DataFrame], cfg: dict) -> pd.DataFrame:
    """The seeds' Table 1: per-group WER, macro-WER and gap over the trained accents, the
    native group's WER and its change vs zero-shot (forgetting), the unseen accents' WER."""
    from training.evaluate import wer_report

    rows = {}
    for name, df in transcripts.items():
        rep = wer_report(df, "accent", groups=cfg["train_groups"])
        row = {f"{g}": rep.by_group.loc[g, "wer"] for g in cfg["train_groups"]}
        row.update({"macro (trained)": rep.macro, "gap (trained)": rep.gap,
                    "worst": rep.worst, "overall (micro)": rep.overall,
                    f"native {cfg['native_group']}": rep.by_group.loc[cfg["native_group"], "wer"]})
        for g in cfg["unseen_groups"]:
            row[f"unseen {g}"] = rep.by_group.loc[g, "wer"]
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    nat = f"native {cfg['native_group']}"
    table[f"forgetting ({cfg['native_group']}, Δ vs zero-shot)"] = table[nat] - table.loc["zero-shot", nat]
    table.index.name = "method"
    return table


# -- probes before vs after -----------------------------------------------------------------
def probe_corpus(corpus, cfg: dict):
    """The corpus the probes see: ``probe_speakers_per_group`` speakers of every group (all
    when unset), chosen so they read different sentence blocks."""
    n = cfg.get("probe_speakers_per_group")
    if not n:
        return corpus
    by_group: dict[str, list[str]] = {}
    for spk, g in sorted(corpus.speaker_groups("accent").items()):
        by_group.setdefault(g, []).append(spk)
    keep = [s for g in sorted(by_group) for s in by_group[g][:n]]
    return corpus.filter(speakers=keep)


def probe_before_after(models: dict, corpus, cfg: dict, out: Path) -> dict[str, pd.DataFrame]:
    """Extract a store per encoder (base + each adapted, merged), run the probe grid, and
    summarise the per-layer error and bias with speaker-bootstrap CIs."""
    from probekit.bias.errors import TooFewSpeakersError
    from probekit.bias.layerwise import layerwise_bias
    from probekit.probes.grid import run_grid
    from probekit.probes.results import ResultsTable
    from probekit.store import extract
    from training.encoder import adapted_encoder

    from probekit.probes.grid import PROBES

    # the linear closed-form probe (named "ridge" in the grid; "linear" in older versions)
    probe = next(n for n in ("ridge", "linear", *sorted(PROBES)) if n in PROBES)
    results = ResultsTable(out / "probe_results")
    poolings = ("utterance", "phone") if "phone" in cfg["probe_tasks"] else ("utterance",)
    for name, (model, proc) in models.items():
        enc = adapted_encoder(model, proc.feature_extractor, name)
        store = extract(enc, corpus, out / "stores" / name.replace(" ", "_"), poolings=poolings,
                        progress=cfg.get("progress", True))
        from probekit.store import EmbeddingStore

        store = store or EmbeddingStore.open(out / "stores" / name.replace(" ", "_"))
        for task in cfg["probe_tasks"]:
            run_grid(store, task, results, group_attribute="accent", probes=(probe,),
                     seeds=cfg["probe_seeds"], train_sets=("all",), encoder=name,
                     progress=cfg.get("progress", True))
    df = results.load()
    try:
        lb = layerwise_bias(df, train_set="all", n_boot=cfg["n_boot"], n_perm=cfg["n_boot"])
    except TooFewSpeakersError as exc:  # the tiny preset: one test speaker per group
        log.warning("no speaker-bootstrap CIs (%s); point estimates only", exc)
        return {"curves": point_curves(df), "summary": pd.DataFrame(), "ci": False}
    curves = lb.curves
    keep = curves["statistic"].isin(["overall", "difference", "worst"])
    tidy = curves.loc[keep, ["encoder", "task", "layer", "layer_index", "statistic", "estimate",
                             "ci_low", "ci_high"]].copy()
    return {"curves": tidy, "summary": lb.summary, "ci": True}


def point_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per-layer pooled error and max - min group error without CIs (too few speakers)."""
    rows = []
    keys = ["encoder", "task", "layer", "layer_index"]
    sub = df[(df["train_set"] == "all") & (df["unit"] != "all")]
    for key, g in sub.groupby(keys):
        err = g["value"] * g["n"]
        by_group = err.groupby(g["test_group"]).sum() / g["n"].groupby(g["test_group"]).sum()
        for stat, v in (("overall", err.sum() / g["n"].sum()),
                        ("difference", by_group.max() - by_group.min())):
            rows.append({**dict(zip(keys, key)), "statistic": stat, "estimate": v,
                         "ci_low": float("nan"), "ci_high": float("nan")})
    return pd.DataFrame(rows)


def layer_table(curves: pd.DataFrame, task: str, statistic: str) -> pd.DataFrame:
    """encoder x layer table of ``estimate [ci_low, ci_high]`` (percent error)."""
    sub = curves[(curves["task"] == task) & (curves["statistic"] == statistic)]
    cell = sub.assign(v=[f"{100 * e:.1f}" if pd.isna(lo) else
                         f"{100 * e:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
                         for e, lo, hi in zip(sub["estimate"], sub["ci_low"], sub["ci_high"])])
    t = cell.pivot_table(index="encoder", columns=["layer_index", "layer"], values="v",
                         aggfunc="first")
    t.columns = [c[1] for c in t.columns]
    order = [m for m in list(METHODS) if m in t.index]
    return t.loc[order]


# -- main -----------------------------------------------------------------------------------
def run(cfg: dict, out: str | Path | None = None) -> dict:
    import torch

    from probekit.corpus.synthetic import build_synthetic_corpus

    torch.set_num_threads(int(cfg.get("threads", 2)))
    out = Path(out) if out else default_out(cfg["preset"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    corpus = build_synthetic_corpus(cfg["corpus"], progress=cfg.get("progress", True))
    train, val, test = make_splits(corpus, cfg)
    log.info("train %d utts, val %d, test %d", len(train), len(val) if val else 0, len(test))
    transcripts, models, timings = {}, {}, {}
    for method in METHODS:
        t = time.perf_counter()
        mdir = out / method
        _reset_if_config_changed(mdir, cfg)
        if method == "zero-shot":
            model, proc = load_base(cfg)
        else:
            model, proc = train_method(method, cfg, train, val, mdir)
        transcripts.update(evaluate_method(method, model, proc, test, cfg, mdir))
        models[method] = (model, proc)
        timings[method] = round(time.perf_counter() - t, 1)
    table = wer_table(transcripts, cfg)
    table.to_csv(out / "wer_table.csv")
    probes = probe_before_after(models, probe_corpus(corpus, cfg), cfg, out)
    probes["curves"].to_csv(out / "probe_curves.csv", index=False)
    probes["summary"].to_csv(out / "probe_summary.csv", index=False)
    layer_tables = {}
    for task in cfg["probe_tasks"]:
        for stat in ("overall", "difference"):
            layer_tables[(task, stat)] = layer_table(probes["curves"], task, stat)
    report = render(cfg, table, layer_tables, train, val, test, timings,
                    time.perf_counter() - t0, probes["ci"])
    (out / "report.md").write_text(report)
    print(report)
    return {"wer_table": table, "layer_tables": layer_tables, "out": out, "report": report}


def render(cfg, table, layer_tables, train, val, test, timings, seconds, ci=True) -> str:
    fmt = lambda df: df.to_markdown(floatfmt=".1f")  # noqa: E731
    lines = [f"# finetune_bias ({cfg['preset']} preset)", "", f"**{DISCLAIMER}**", "",
             f"Model {cfg['model']}; corpus {cfg['corpus']}; train {len(train)} utterances "
             f"({', '.join(cfg['train_groups'])}), validation {len(val) if val else 0}, test "
             f"{len(test)} (speaker- and sentence-disjoint); {cfg['steps']} steps of "
             f"{cfg['batch_size']}, lr {cfg['lr']:g}, LoRA r=16 alpha=16 dropout 0.05 on q,v. "
             f"Total {seconds / 60:.1f} min ({json.dumps(timings)} s per method).", "",
             "## WER (%) by accent on the test speakers", "",
             "macro and gap over the trained accents; forgetting = native WER change vs "
             "zero-shot; MAS-LoRA accent-unknown mixes its experts uniformly.", "",
             fmt(table), ""]
    for (task, stat), t in layer_tables.items():
        what = {"overall": "probe error (%)", "difference": "max - min group error (%)"}[stat]
        name = "group-ID (accent)" if task.startswith("group:") else "phone"
        how = "95% speaker-bootstrap CI" if ci else "no CI: too few test speakers per group"
        lines += [f"## Layerwise {name} probe: {what}, {how}", "",
                  "Linear probes trained on all groups, tested on held-out speakers "
                  "(probekit.probes.grid); merged adapted encoders.", "", fmt(t), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--config", default=None, help="a TOML file of presets")
    ap.add_argument("--out", default=None, help="output folder (default: the probekit cache)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a preset value (TOML syntax), e.g. --set steps=12")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = {}
    for item in args.set:
        overrides.update(tomllib.loads(item))
    cfg = load_config(args.preset, args.config, progress=not args.no_progress, **overrides)
    run(cfg, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
