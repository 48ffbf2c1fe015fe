"""The rules of a study's output folder: claim it (:func:`probekit.outdir.claim_output`),
reuse it for the same config, and keep what a changed config did not make stale."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from probekit.atomic import write_json
from probekit.cliutil import slug
from probekit.errors import ProbekitError
from probekit.jsonfile import read_json_object
from probekit.study.config import StudyConfig

__all__ = ["StudyError", "prepare_output", "invalidate_changed", "STUDY_CONTENTS",
           "STUDY_STAMP", "STUDY_RECORD"]

log = logging.getLogger(__name__)
STUDY_STAMP = "study.json"
#: The schema of ``study.json``: the config's fingerprint and the config.
STUDY_RECORD = {"fingerprint": str, "config": dict}


class StudyError(ProbekitError):
    """A study cannot run (e.g. its output folder holds a different run)."""


def _slug(s: str) -> str:
    return slug(s, empty="encoder")


#: What a study writes in its folder (the stamp lists these; --overwrite removes nothing else).
STUDY_CONTENTS = ("study.json", "work", "analysis", "compare", "report.html", "report.md",
                  "report_figures", ".probekit-report.json", "run.json")


def prepare_output(out: Path, config: StudyConfig, overwrite: bool) -> bool:
    """Make ``out`` ready for ``config``; True when it already belongs to the same config.

    - a missing or empty folder is created and stamped (:mod:`probekit.outdir`);
    - a study folder of the same config is reused;
    - a study folder of another config is refused, unless ``overwrite`` or the run there never
      finished (no ``run.json``: a failed run does not keep its folder): then the stages
      whose inputs did not change are kept (:func:`invalidate_changed`) and the rest
      recomputed;
    - any other non-empty folder is refused, ``overwrite`` or not, unless probekit wrote it
      (then ``overwrite`` replaces it). probekit never deletes a folder it did not write.
    """
    from probekit.locks import is_lock_file
    from probekit.outdir import OutputFolderError, claim_output, read_stamp

    stamp = out / STUDY_STAMP
    fp = config.fingerprint()
    ours = read_stamp(out) if out.is_dir() else None
    if ours is not None and ours["kind"] == "study" and stamp.exists():
        old = read_json_object(stamp, "study record", STUDY_RECORD,
                               required=tuple(STUDY_RECORD))
        if old.get("fingerprint") == fp:
            claim_output(out, "study", contents=STUDY_CONTENTS)
            return True
        finished = (out / "run.json").exists()
        if not overwrite and not finished:
            log.warning("%s holds a study run that did not finish (config %s): reusing the "
                        "folder for this config, keeping the stages whose inputs did not change",
                        out, old.get("fingerprint"))
        elif not overwrite:
            changed = sorted(k for k in set(old.get("config", {})) | set(config.to_dict())
                             if old.get("config", {}).get(k) != config.to_dict().get(k))
            raise StudyError(f"{out} holds a different run (config {old.get('fingerprint')}, "
                             f"this one {fp}; differs in: {', '.join(changed) or '?'}); "
                             "choose another --out or pass --overwrite (which keeps the stages "
                             "whose inputs did not change)")
        invalidate_changed(out, old.get("config", {}), config)
        (out / "run.json").unlink(missing_ok=True)  # finished again only when this run is
    elif out.exists() and (not out.is_dir() or any(not is_lock_file(p) for p in out.iterdir())):
        # A study.json beside work/ without probekit's stamp is a look-alike: never adopted.
        if ours is None:
            raise StudyError(f"{out} is not empty and was not written by probekit; probekit "
                             "never writes into or deletes such a folder, even with --overwrite."
                             " Choose another --out")
        if not overwrite and ours["kind"] != "study":  # a study killed before its study.json
            raise StudyError(f"{out} holds a probekit {ours.get('kind')} output, not a study; "
                             "choose another --out or pass --overwrite")
    try:  # with overwrite, only what the other output's stamp lists is removed
        claim_output(out, "study", overwrite=overwrite, contents=STUDY_CONTENTS,
                     command="study run", fingerprint=fp)
    except OutputFolderError as exc:
        raise StudyError(str(exc)) from None
    write_json(stamp, {"fingerprint": fp, "config": config.to_dict()})
    return False


def _task_key(t: dict) -> tuple:
    return (json.dumps(t.get("probes")), json.dumps(t.get("train_sets")), t.get("max_epochs"))


def invalidate_changed(out: Path, old: dict, config: StudyConfig) -> dict:
    """Drop what a config change made stale in a study folder; keep the rest.

    - embedding stores: kept for every encoder whose spec (name, label, sources, layers)
      and the corpus and poolings are unchanged; the others are deleted (a kept store is
      still checked against its fingerprint when it is reused);
    - probe results: a part is kept when its encoder's store is kept, the group attribute is
      the same, its task's probes/train sets/epochs are unchanged and its seed is still
      listed; the others move to ``work/results/superseded/`` (never read);
    - fine-tuning runs (``work/train/``, zero-shot transcripts included) are deleted when
      ``[training]``, its base encoder or the corpus changed (``"train"`` in
      ``stores_removed``); otherwise each run is still reused only for its own key;
    - the analysis and the report are always rebuilt.

    Returns ``{"stores_removed": [...], "results_retired": n}``.
    """
    from probekit.probes.results import ResultsTable

    new = config.to_dict()
    same_corpus = old.get("corpus") == new["corpus"] and old.get("poolings") == new["poolings"]
    old_enc = {_slug(e.get("label") or e["name"]): e for e in old.get("encoders", [])}
    new_enc = {_slug(e.get("label") or e["name"]): e for e in new["encoders"]}
    keep = {k for k, e in new_enc.items() if same_corpus and old_enc.get(k) == e}
    removed = []
    stores = out / "work" / "stores"
    if stores.is_dir():
        for d in stores.iterdir():
            if d.is_dir() and d.name not in keep:
                shutil.rmtree(d)
                removed.append(d.name)
    old_tasks = {t["task"]: t for t in old.get("tasks", [])}
    new_tasks = {t["task"]: t for t in new["tasks"]}
    same_group = old.get("group_attribute") == new["group_attribute"]
    keep_display = {(e.get("label") or e["name"]) for k, e in new_enc.items() if k in keep}

    def stale(part) -> bool:
        if not same_group:
            return True
        for (enc, task, seed), _ in part.groupby(["encoder", "task", "seed"]):
            t_old, t_new = old_tasks.get(task), new_tasks.get(task)
            if enc not in keep_display or t_old is None or t_new is None \
                    or _task_key(t_old) != _task_key(t_new) or int(seed) not in t_new["seeds"]:
                return True
        return False

    results = out / "work" / "results"
    retired = ResultsTable(results).retire(stale) if results.is_dir() else []
    # fine-tuning runs: a changed [training] or base encoder (or corpus) retrains everything
    base = (new.get("training") or {}).get("base")
    if (old.get("training") != new.get("training") or not same_corpus
            or old_enc.get(_slug(base or "")) != new_enc.get(_slug(base or ""))) \
            and (out / "work" / "train").is_dir():
        shutil.rmtree(out / "work" / "train")
        removed.append("train")
    log.info("config changed: removed stores %s, retired %d results part(s)", removed, len(retired))
    return {"stores_removed": removed, "results_retired": len(retired)}


