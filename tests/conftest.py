"""Suite-wide settings: no hub access and no writes to the user's cache."""

from __future__ import annotations

import os

import pytest

# Set before transformers/huggingface_hub are imported by any test module.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Model conversions and synthetic corpora go to a per-session folder."""
    cache = tmp_path_factory.mktemp("probekit-cache")
    old = os.environ.get("PROBEKIT_CACHE_DIR")
    os.environ["PROBEKIT_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("PROBEKIT_CACHE_DIR", None)
    else:
        os.environ["PROBEKIT_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def whisper_tiny_en(_isolated_cache):
    """The real whisper tiny.en encoder from its PyPI package (converted once per session)."""
    from probekit.encoders import load_encoder

    return load_encoder("whisper-tiny.en", device="cpu", sources=("package",))
