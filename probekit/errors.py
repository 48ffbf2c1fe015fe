"""Exceptions raised for bad user input. Each message names the offending item."""


class ProbekitError(Exception):
    """Base class of every error probekit raises on purpose."""


class CorpusError(ProbekitError, ValueError):
    """A corpus, manifest, utterance or audio file is malformed or unusable."""


class EncoderError(ProbekitError, ValueError):
    """An encoder cannot be built, or was given input it cannot encode."""


class WeightsError(ProbekitError, RuntimeError):
    """Model weights cannot be found, verified or converted."""


class StoreError(ProbekitError, RuntimeError):
    """An embedding store cannot be written or read, or does not match what was asked for."""
