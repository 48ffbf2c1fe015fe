"""Every Python example of docs/training.md runs (on the tiny random Whisper, 1 step)."""

import re
from pathlib import Path

from .test_finetune import blocks_corpus  # noqa: F401  (fixture)

DOC = Path(__file__).parents[2] / "docs" / "training.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_python_example_of_the_training_docs_runs(tiny_whisper_dir, blocks_corpus,  # noqa: F811
                                                        tmp_path, monkeypatch):
    import training.evaluate

    monkeypatch.chdir(tmp_path)
    full = training.evaluate.transcribe

    def short(*a, **k):   # a random model never ends: decode 4 tokens, not the model's 446
        k["max_new_tokens"] = k.get("max_new_tokens") or 4
        return full(*a, **k)

    monkeypatch.setattr(training.evaluate, "transcribe", short)
    blocks = _examples()
    assert len(blocks) >= 2
    for code in blocks:
        code = code.replace('resolve_whisper("whisper-tiny.en", sources=("local", "hf-cache", '
                            '"package"))', repr(str(tiny_whisper_dir)))
        code = code.replace('"whisper-tiny.en"', repr(str(tiny_whisper_dir)))
        code = re.sub(r"steps=\d+", "steps=1", code)
        ns = {"corpus": blocks_corpus}
        exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102
    assert (tmp_path / "runs" / "fused" / "merged" / "config.json").is_file()
    assert (tmp_path / "runs" / "mas" / "finetune.json").is_file()


def test_the_defect_tables_cite_tests_that_exist():
    tests = Path(__file__).parents[1]  # the whole suite: rows may cite tests/bias/... too
    defined = {m for f in tests.rglob("test_*.py")
               for m in re.findall(r"^def (test_\w+)", f.read_text(), flags=re.M)}
    files = {f.stem for f in tests.rglob("test_*.py")}
    cited = set(re.findall(r"`[\w./]*?(test_\w+)", DOC.read_text())) | set(
        re.findall(r"::(test_\w+)", DOC.read_text()))
    cited = {c for c in cited if c.count("_") >= 2}   # not a parameter such as test_speakers
    missing = sorted(c for c in cited if c not in defined and c not in files)
    assert not missing, f"docs/training.md cites tests that do not exist: {missing}"
