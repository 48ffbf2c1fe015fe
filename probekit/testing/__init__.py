"""Test helpers that ship with the package: tiny models and corpora (random, not findings)."""
