"""The one cache root of probekit: ``$PROBEKIT_CACHE_DIR`` when set, else platformdirs' user
cache folder for probekit. Built corpora (``corpora/``), converted weights and power
simulations (``power/``) live in folders under it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$PROBEKIT_CACHE_DIR`` if set, else platformdirs' user cache dir for probekit."""
    env = os.environ.get("PROBEKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("probekit"))
