"""Issue 15: the docs agree with the code (generated references, one source for the
default corpus size and the demo's time, and an end-to-end example that runs)."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_reference_docs_are_generated_from_the_code(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    ns = runpy.run_path(str(ROOT / "docs" / "gen_reference.py"), run_name="gen_reference")
    for name, fn in (("cli.md", ns["cli_md"]), ("api.md", ns["api_md"])):
        assert (ROOT / "docs" / name).read_text() == fn(), (
            f"docs/{name} is out of date: run `python docs/gen_reference.py`")


def test_api_reference_lists_methods():
    api = (ROOT / "docs" / "api.md").read_text()
    for method in ("Corpus.summary", "Corpus.with_intersection", "EmbeddingStore.load_task",
                   "Encoder.encode", "ResultsTable.load", "ResultsTable.retire"):
        assert f"`{method}(" in api, method


def test_one_source_for_corpus_size_and_demo_time():
    from probekit.corpus.synthetic import default_corpus_size
    from probekit.demo import DEMO_COLD_MINUTES

    size = default_corpus_size()
    assert size == "10 accents x 10 speakers x 5 sentences (500 utterances)"
    readme = (ROOT / "README.md").read_text()
    start = (ROOT / "docs" / "getting-started.md").read_text()
    import probekit.demo as demo
    assert size in readme
    assert "10 speakers x 5" in demo.__doc__
    minutes = f"{DEMO_COLD_MINUTES:g} minutes"
    assert minutes in readme and minutes in start and minutes in demo.__doc__
    for stale in ("10-15 minutes", "x 6 speakers", "10 groups x 6"):
        assert stale not in readme + start + demo.__doc__


@pytest.mark.slow
def test_end_to_end_example_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBEKIT_EXAMPLE_DIR", str(tmp_path))
    runpy.run_path(str(ROOT / "docs" / "example_end_to_end.py"), run_name="__main__")
    assert (tmp_path / "report" / "report.html").exists()
    assert (tmp_path / "analysis" / "findings.md").exists()
