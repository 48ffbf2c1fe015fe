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


class MetadataError(ProbekitError, ValueError):
    """A metadata file (run.json, provenance.json, a stamp, an arguments file) is not valid JSON
    or holds a field of the wrong type; the message names the file and the field."""
