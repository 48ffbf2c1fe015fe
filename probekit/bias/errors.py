"""Exceptions of the bias analysis; each message names the offending column, group or speaker."""

from __future__ import annotations

from probekit.errors import ProbekitError


class BiasInputError(ProbekitError, ValueError):
    """A results table or embedding slice cannot be analysed as given."""


class TooFewSpeakersError(BiasInputError):
    """A group has fewer speakers than speaker-level statistics need (bootstrap, permutation)."""
