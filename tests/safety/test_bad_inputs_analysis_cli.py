"""Issue 21 (items 2, 3, 4 and analysis/report metadata of item 1): bad input to ``analyze``,
``report``, ``compare``, ``train`` and ``corpus synth`` ends in exit code 2 and one message
naming the item, never a traceback.

One table: each case id is the kind of bad input; its builder makes the input in ``tmp_path``
(tiny: a fake store's results, one analysis built once per module) and returns the command,
the words the message must hold, and an optional check run afterwards (e.g. that nothing was
deleted through a link)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest

from probekit.cli import main
from probekit.outdir import OUTPUT_STAMP_NAME
from probekit.probes.grid import run_grid
from probekit.probes.results import ResultsTable

from tests.bias.test_compare import _table
from tests.probes.test_grid import FakeStore, _meta

_AN = ["--n-boot", "20", "--n-perm", "20", "-q"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A results table, a finished analysis of it, and a before/after results table."""
    root = tmp_path_factory.mktemp("bad-inputs")
    s = FakeStore(_meta())
    s.fingerprint = {"encoder": "fake", "corpus": "A"}
    s.index = {"attributes": ["accent"]}
    res = root / "res"
    run_grid(s, "phone", res, seeds=(0,), layers=["conv"], progress=False)
    an = root / "analysis"
    assert main(["analyze", str(res), "--out", str(an), *_AN]) == 0
    pair = root / "pair"
    ResultsTable(pair).append(_table())
    # a corpus train can split (its audio is never read: every train case is refused before)
    from probekit.corpus.model import AudioSource, Corpus, Utterance

    Corpus([Utterance(id=f"{a}{s}_{k}", audio=AudioSource(path=f"{a}{s}_{k}.wav"),
                      speaker=f"{a}{s}", groups={"accent": a}, text=f"sentence {a} {s} {k}")
            for a in ("us", "uk", "in") for s in range(5) for k in range(2)]).save(root / "corpus")
    return {"res": res, "an": an, "pair": pair, "corpus": root / "corpus"}


def _analysis(made, tmp: Path) -> Path:
    """A copy of the finished analysis, inside its own study-like folder (run.json beside)."""
    dst = tmp / "study" / "analysis"
    shutil.copytree(made["an"], dst, symlinks=True)
    return dst


def _file(tmp: Path, name="notes.txt", text="my notes\n") -> Path:
    (tmp / name).write_text(text)
    return tmp / name


def _intact(path: Path, name: str):
    def check():
        assert (path / name).is_file(), f"{path / name} was deleted through a link"
    return check


# -- the cases: (argv, words the message names, optional check) ------------------------------

def analyze_out_under_a_file(made, tmp):
    f = _file(tmp)
    return ["analyze", str(made["res"]), "--out", str(f / "an"), *_AN], [str(f)], None


def analyze_out_is_a_file(made, tmp):
    f = _file(tmp)
    return ["analyze", str(made["res"]), "--out", str(f), *_AN], [str(f), "is a file"], None


def analyze_out_symlink_to_an_analysis(made, tmp):
    target = _analysis(made, tmp)
    (tmp / "link").symlink_to(target, target_is_directory=True)
    return (["analyze", str(made["res"]), "--out", str(tmp / "link"), *_AN],
            [str(tmp / "link"), "symbolic link"], _intact(target, "layer_curves.csv"))


def analyze_out_read_only_folder(made, tmp):
    out = Path("/sys") / f"probekit-test-{os.getpid()}"   # not writable, even by root
    return ["analyze", str(made["res"]), "--out", str(out), *_AN], [str(out)], None


def analyze_out_inside_the_results_folder(made, tmp):
    res = tmp / "res"
    shutil.copytree(made["res"], res)
    return (["analyze", str(res), "--out", str(res / "analysis"), *_AN],
            [str(res / "analysis"), "inside"], lambda: not (res / "analysis").exists() or
            pytest.fail("an analysis was written into its results folder"))


def analyze_n_boot_zero(made, tmp):
    return (["analyze", str(made["res"]), "--out", str(tmp / "an"), "--n-boot", "0"],
            ["--n-boot", ">= 1"], None)


def analyze_n_boot_negative(made, tmp):
    return (["analyze", str(made["res"]), "--out", str(tmp / "an"), "--n-boot", "-5"],
            ["--n-boot", ">= 1"], None)


def analyze_n_perm_zero(made, tmp):
    return (["analyze", str(made["res"]), "--out", str(tmp / "an"), "--n-perm", "0"],
            ["--n-perm", ">= 1"], None)


def analyze_seed_negative(made, tmp):
    return (["analyze", str(made["res"]), "--out", str(tmp / "an"), "--seed", "-1"],
            ["--seed", "0 to"], None)


def report_table_missing_a_column(made, tmp):
    an = _analysis(made, tmp)
    t = pd.read_csv(an / "layer_curves.csv")
    t.drop(columns=["n_per_split"]).to_csv(an / "layer_curves.csv", index=False)
    return ["report", str(an), "--out", str(tmp / "rep")], ["layer_curves.csv", "n_per_split"], \
        None


def report_meta_not_json(made, tmp):
    an = _analysis(made, tmp)
    meta = _file(tmp, "meta.json", '{"config": {"title": "x"')
    return (["report", str(an), "--out", str(tmp / "rep"), "--meta", str(meta)],
            [str(meta), "not valid JSON"], None)


def report_run_json_field_of_wrong_type(made, tmp):
    an = _analysis(made, tmp)
    (an.parent / "run.json").write_text(json.dumps({"config": "fast"}))
    return ["report", str(an), "--out", str(tmp / "rep")], ["run.json", "'config'"], None


def report_run_json_not_an_object(made, tmp):
    an = _analysis(made, tmp)
    (an.parent / "run.json").write_text("[1, 2]")
    return ["report", str(an), "--out", str(tmp / "rep")], ["run.json", "object"], None


def report_run_json_random_init_a_string(made, tmp):
    an = _analysis(made, tmp)
    (an.parent / "run.json").write_text(json.dumps({"random_init": "whisper"}))
    return ["report", str(an), "--out", str(tmp / "rep")], ["run.json", "'random_init'"], None


def report_provenance_not_json(made, tmp):
    an = _analysis(made, tmp)
    (an / "provenance.json").write_text("{truncated")
    return ["report", str(an), "--out", str(tmp / "rep")], ["provenance.json", "JSON"], None


def report_stamp_not_json(made, tmp):
    an = _analysis(made, tmp)
    (an / OUTPUT_STAMP_NAME).write_text("{")
    return ["report", str(an), "--out", str(tmp / "rep")], [OUTPUT_STAMP_NAME], None


def report_stamp_row_count_wrong_type(made, tmp):
    an = _analysis(made, tmp)
    st = json.loads((an / OUTPUT_STAMP_NAME).read_text())
    st["tables"]["layer_curves"] = "many"
    (an / OUTPUT_STAMP_NAME).write_text(json.dumps(st))
    return ["report", str(an), "--out", str(tmp / "rep")], ["tables.layer_curves"], None


def report_out_under_a_file(made, tmp):
    an, f = _analysis(made, tmp), _file(tmp)
    return ["report", str(an), "--out", str(f / "rep")], [str(f)], None


def report_out_symlink(made, tmp):
    an = _analysis(made, tmp)
    (tmp / "elsewhere").mkdir()
    (tmp / "link").symlink_to(tmp / "elsewhere", target_is_directory=True)
    return ["report", str(an), "--out", str(tmp / "link")], [str(tmp / "link"), "symbolic"], None


def compare_out_under_a_file(made, tmp):
    f = _file(tmp)
    return (["-q", "compare", str(made["pair"]), "--before", "base", "--out", str(f / "cmp")],
            [str(f)], None)


def compare_out_symlink_to_a_comparison(made, tmp):
    target = tmp / "cmp"
    assert main(["-q", "compare", str(made["pair"]), "--before", "base", "--out",
                 str(target)]) == 0
    (tmp / "link").symlink_to(target, target_is_directory=True)
    return (["-q", "compare", str(made["pair"]), "--before", "base", "--out", str(tmp / "link")],
            [str(tmp / "link"), "symbolic link"], _intact(target, "comparison.csv"))


def train_out_under_a_file(made, tmp):
    f = _file(tmp)
    return (["train", "--corpus", str(made["corpus"]), "--out", str(f / "run")], [str(f)], None)


def train_objective_args_not_json(made, tmp):
    return (["train", "--corpus", str(made["corpus"]), "--out", str(tmp / "run"),
             "--objective-args", '{"dro_mode": online}'], ["--objective-args", "JSON"], None)


def train_arguments_file_malformed(made, tmp):
    f = _file(tmp, "args.json", '{"dro_mode": "online",\n')
    return (["train", "--corpus", str(made["corpus"]), "--out", str(tmp / "run"),
             "--objective-args", str(f)], [str(f), "line 2"], None)


def train_batch_size_zero(made, tmp):
    return (["train", "--corpus", str(made["corpus"]), "--out", str(tmp / "run"),
             "--batch-size", "0"], ["--batch-size", ">= 1"], None)


def train_learning_rate_zero(made, tmp):
    return (["train", "--corpus", str(made["corpus"]), "--out", str(tmp / "run"),
             "--lr", "0"], ["--lr", "> 0"], None)


def corpus_synth_out_under_a_file(made, tmp):
    f = _file(tmp)
    return (["corpus", "synth", "--preset", "small", "--out", str(f / "corpus")], [str(f)],
            None)


def corpus_synth_seed_negative(made, tmp):
    return (["corpus", "synth", "--preset", "small", "--out", str(tmp / "c"), "--seed", "-3"],
            ["--seed", "0 to"], None)


CASES = [analyze_out_under_a_file, analyze_out_is_a_file, analyze_out_symlink_to_an_analysis,
         analyze_out_read_only_folder, analyze_out_inside_the_results_folder, analyze_n_boot_zero,
         analyze_n_boot_negative, analyze_n_perm_zero, analyze_seed_negative, report_table_missing_a_column,
         report_meta_not_json, report_run_json_field_of_wrong_type, report_run_json_not_an_object,
         report_run_json_random_init_a_string, report_provenance_not_json, report_stamp_not_json,
         report_stamp_row_count_wrong_type, report_out_under_a_file, report_out_symlink,
         compare_out_under_a_file, compare_out_symlink_to_a_comparison, train_out_under_a_file,
         train_objective_args_not_json, train_arguments_file_malformed, train_batch_size_zero,
         train_learning_rate_zero, corpus_synth_out_under_a_file, corpus_synth_seed_negative]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_clear_error(case, made, tmp_path, capsys):
    argv, names, check = case(made, tmp_path)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:   # the parser's refusal (argparse exits 2)
        rc = exc.code
    except Exception as exc:    # what the user would see as a traceback
        pytest.fail(f"traceback: {type(exc).__name__}: {exc}")
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert rc == 2, f"exit code {rc}: {text[-500:]}"
    assert "Traceback" not in text
    for word in names:
        assert word in text, f"{word!r} not named in: {text[-500:]}"
    if check:
        check()


# -- trusted files only (item 4): the documented recovery is a refusal, nothing is run ---------

class _Touch:
    """A pickle that, when unpickled, creates a file: what a hostile checkpoint could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_strangers_pickle_at_the_checkpoint_path_is_refused_never_run(tmp_path):
    from training.finetune import _run_folder
    from training.config import TrainingError

    out, marker = tmp_path / "run", tmp_path / "was-run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(pickle.dumps({"step": _Touch(marker)}))
    with pytest.raises(TrainingError, match="checkpoint.pt is not a training checkpoint"):
        _run_folder(out, {"a": 1}, "key")
    assert not marker.exists()   # the pickle was not executed


def test_adapter_weights_that_are_not_safetensors_are_refused(tmp_path):
    from training.adapters import AdapterConfig
    from training.adapters.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS, AdapterError, load_adapters

    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps(AdapterConfig().to_dict()))
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(pickle.dumps({"w": _Touch(tmp_path / "was-run")}))
    with pytest.raises(AdapterError, match=ADAPTER_WEIGHTS):
        load_adapters(None, tmp_path)
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps({"r": 4, "colour": "red"}))
    with pytest.raises(AdapterError, match="unknown field colour"):
        load_adapters(None, tmp_path)
    assert not (tmp_path / "was-run").exists()
