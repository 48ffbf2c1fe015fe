"""probekit: find where and why speech encoders treat speaker groups unequally."""

__version__ = "0.1.0"

from probekit.errors import CorpusError, EncoderError, ProbekitError, WeightsError  # noqa: E402

__all__ = ["__version__", "ProbekitError", "CorpusError", "EncoderError", "WeightsError"]
