"""Issue 21 item 7 (the part for item 6's files): bad JSON files that ``report``, ``study run``
and ``train`` read back from their own folders or take as ``--meta`` (damaged by a crash, a
hand edit or another tool). Each case builds the bad input in tmp_path and runs the command
in-process: exit code 2, no traceback, and a one-line message naming the file and field."""

from __future__ import annotations

import dataclasses
import json
import shutil
import textwrap

import pytest

from probekit.cli import main
from probekit.outdir import write_stamp


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    from probekit.testing.simulate import simulate_results
    from probekit.probes.results import ResultsTable

    root = tmp_path_factory.mktemp("bad-report")
    df = simulate_results(n_groups=2, speakers_per_group=4, n_layers=2, seeds=(0,),
                          train_sets="full")
    ResultsTable(root / "results").append(df)
    assert main(["-q", "analyze", str(root / "results"), "--out", str(root / "analysis"),
                 "--n-boot", "10", "--n-perm", "9"]) == 0
    return root / "analysis"


@pytest.fixture(scope="module")
def train_corpus(tmp_path_factory, small_corpus):
    from probekit.corpus.model import Corpus

    utts = [dataclasses.replace(u, speaker=f"{u.speaker}-{i % 2}")
            for i, u in enumerate(small_corpus)]
    return Corpus(utts, root=small_corpus.root).save(tmp_path_factory.mktemp("bad-train") / "c")


def _write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -- report --meta / run.json ----------------------------------------------------------------
def _report_meta(content):
    def build(tmp_path, fx):
        meta = _write(tmp_path / "run.json", content)
        return ["report", str(fx["analysis"]), "--out", str(tmp_path / "rep"), "--meta", str(meta)]
    return build


def _beside_analysis(name, content):
    """A copy of the analysis with ``name`` (run.json beside it, or a file inside) replaced."""
    def build(tmp_path, fx):
        an = tmp_path / "x" / "analysis"
        shutil.copytree(fx["analysis"], an)
        _write(an.parent / "run.json" if name == "run.json" else an / name, content)
        return ["report", str(an), "--out", str(tmp_path / "rep")]
    return build


# -- study run: its own study.json -------------------------------------------------------------
def _study_record(content):
    def build(tmp_path, fx):
        bad = _write(tmp_path / "m.csv", "not,a,manifest\n")  # the run must not get further
        toml = _write(tmp_path / "s.toml", textwrap.dedent(f"""
            [corpus]
            path = "{bad}"
            [[encoders]]
            name = "whisper-tiny.en"
        """))
        out = tmp_path / "study"
        out.mkdir()
        write_stamp(out, "study", {"contents": ["study.json", "work"]})
        _write(out / "study.json", content)
        return ["study", "run", str(toml), "--out", str(out)]
    return build


# -- train: its run folder's finetune.json / run_settings.json ---------------------------------
def _train_file(name, content):
    def build(tmp_path, fx):
        out = tmp_path / "run"
        out.mkdir()
        write_stamp(out, "training", {"contents": ["finetune.json", "run_settings.json"]})
        _write(out / name, content)
        return ["train", "--corpus", str(fx["train_corpus"]), "--out", str(out), "--model",
                str(fx["tiny_whisper_dir"]), "--steps", "1", "--batch-size", "4",
                "--val-speakers", "1", "--test-speakers", "0.34", "--cpu", "--no-progress",
                "--max-new-tokens", "2"]
    return build


#: kind of bad input -> (builder, words the message must hold)
CASES = {
    "meta-not-json": (_report_meta("{not json"), ["run.json", "not valid JSON"]),
    "meta-not-utf8": (_report_meta(b'{"title": "\xff"}'), ["run.json", "not UTF-8"]),
    "meta-not-an-object": (_report_meta([1, 2]), ["run.json", "expected a JSON object"]),
    "meta-config-not-an-object": (_report_meta({"config": 5}), ["run.json", "'config'"]),
    "meta-alpha-a-string": (_report_meta({"config": {"alpha": "five percent"}}),
                            ["run.json", "'alpha'", "a number"]),
    "meta-alpha-out-of-range": (_report_meta({"config": {"alpha": 5}}),
                                ["run.json", "'alpha'", "(0, 1)"]),
    "meta-title-not-a-string": (_report_meta({"config": {"title": ["a"]}}),
                                ["run.json", "'title'"]),
    "meta-random-init-a-string": (_report_meta({"random_init": "enc"}),
                                  ["run.json", "'random_init'"]),
    "meta-random-init-numbers": (_report_meta({"random_init": [1]}),
                                 ["run.json", "'random_init'"]),
    "meta-synthetic-a-number": (_report_meta({"synthetic": 3}), ["run.json", "'synthetic'"]),
    "run-json-beside-analysis-truncated": (_beside_analysis("run.json", '{"config": {"alp'),
                                           ["run.json", "not valid JSON"]),
    "findings-md-not-utf8": (_beside_analysis("findings.md", "# caf\xe9\n".encode("latin-1")),
                             ["findings.md", "not UTF-8"]),
    "study-json-not-json": (_study_record("study.json? no"), ["study.json", "not valid JSON"]),
    "study-json-not-an-object": (_study_record(["x"]), ["study.json", "expected a JSON object"]),
    "study-json-without-fingerprint": (_study_record({"config": {}}),
                                       ["study.json", "'fingerprint'", "missing"]),
    "study-json-config-a-list": (_study_record({"fingerprint": "x", "config": []}),
                                 ["study.json", "'config'"]),
    "finetune-json-truncated": (_train_file("finetune.json", '{"settings": {'),
                                ["finetune.json", "not valid JSON"]),
    "finetune-json-not-an-object": (_train_file("finetune.json", "[]"),
                                    ["finetune.json", "expected a JSON object"]),
    "finetune-json-settings-a-number": (_train_file("finetune.json", {"settings": 3}),
                                        ["finetune.json", "'settings'"]),
    "run-settings-json-not-json": (_train_file("run_settings.json", "\x00\x00"),
                                   ["run_settings.json", "not valid JSON"]),
    "run-settings-json-without-settings": (_train_file("run_settings.json", {}),
                                           ["run_settings.json", "'settings'", "missing"]),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_is_one_line_error_naming_it(kind, request, tmp_path, capsys):
    build, words = CASES[kind]
    names = ("train_corpus", "tiny_whisper_dir") if build.__qualname__.startswith("_train") \
        else ("analysis",) if "report" in build.__qualname__ or "beside" in build.__qualname__ \
        else ()
    fx = {n: request.getfixturevalue(n) for n in names}
    argv = build(tmp_path, fx)
    capsys.readouterr()
    try:
        rc = main(["-q", *argv])
    except SystemExit as exc:  # an argparse refusal
        rc = exc.code
    except Exception as exc:  # noqa: BLE001 - a traceback is what the case must not give
        pytest.fail(f"{kind}: traceback: {type(exc).__name__}: {exc}")
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert rc == 2, text[-500:]
    assert "Traceback" not in text
    missing = [w for w in words if w not in text]
    assert not missing, f"message lacks {missing}: {text[-500:]}"
