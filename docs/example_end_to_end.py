# %% [markdown]
# # probekit end to end, from Python (notebook-style; runs in the test suite)
#
# Corpus -> encoder -> embedding store -> probe grid -> results table -> bias analysis ->
# report, on the small synthetic corpus and a tiny *randomly initialised* wav2vec 2.0, so it
# runs in well under a minute on a laptop CPU. Nothing it prints is a finding: the speech is
# synthetic and the model's weights are random. Swap in `read_corpus("~/L2-ARCTIC")` (or
# `read_corpus(folder, kind="hf", preset="edacc")`) and `load_encoder("whisper-tiny.en")` for
# a real run. Each `# %%` is a notebook cell (Jupyter, VS Code and jupytext read it as one).
#
# Run it: `python docs/example_end_to_end.py` (writes into ./probekit-example, or into
# `$PROBEKIT_EXAMPLE_DIR`).

# %%
import os
from pathlib import Path

from probekit.cli import main as probekit_cli
from probekit.corpus.synthetic import build_synthetic_corpus, resolve_config
from probekit.corpus.validate import validate_corpus
from probekit.encoders import load_encoder
from probekit.probes.grid import run_grid
from probekit.probes.results import ResultsTable
from probekit.report import build_report
from probekit.store import extract
from probekit.testing.tiny_models import save_tiny_ssl

work = Path(os.environ.get("PROBEKIT_EXAMPLE_DIR", "probekit-example"))

# %% [markdown]
# ## 1. A corpus, summarised and validated

# %%
# The "small" preset with 4 speakers per accent: half are held out for testing, and a
# speaker-level interval needs at least two test speakers per group.
corpus = build_synthetic_corpus(resolve_config("small", speakers_per_group=4), work / "corpus",
                                progress=False)
print(corpus.summary("accent").round(4))
report = validate_corpus(corpus)
print(report)
assert report.ok

# %% [markdown]
# ## 2. An encoder and its embedding store (every layer, pooled per utterance and per phone)

# %%
encoder = load_encoder(str(save_tiny_ssl("wav2vec2", work / "tiny-model")), device="cpu")
store = extract(encoder, corpus, work / "store", poolings=("utterance", "phone"), progress=False)
print(store.layers, store.key)

# %% [markdown]
# ## 3. The probe grid: phone probes per layer, trained on each group, all, all-but-one

# %%
rows = run_grid(store, "phone", work / "results", group_attribute="accent", seeds=(0,),
                progress=False)
table = ResultsTable(work / "results").load()
print(len(rows), "new rows;", len(table), "rows in the table")
print(table[table.unit == "all"].groupby(["layer", "test_group"]).value.mean().unstack().round(3))

# %% [markdown]
# ## 4. Bias analysis and the report
#
# `probekit analyze` owns its `--out` folder (what it wrote there is replaced on every run, so
# no figure of an older analysis survives); the report is self-contained HTML with a markdown
# twin.

# %%
assert probekit_cli(["-q", "analyze", str(work / "results"), "--out", str(work / "analysis"),
                     "--n-boot", "50", "--n-perm", "50"]) == 0
html, md = build_report(work / "analysis", work / "report", {"synthetic": True,
                                                            "random_init": ["tiny wav2vec2"]})
print("report:", html)
