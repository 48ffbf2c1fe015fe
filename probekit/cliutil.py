"""Shared pieces of the command line, so every subcommand follows the same conventions.

- :class:`ProbekitParser`: every parser and sub-parser accepts ``-q/--quiet`` and
  ``-v/--verbose`` (before or after the subcommand: ``probekit -q demo`` = ``probekit demo -q``)
  and shows defaults in ``--help`` (:class:`HelpFormatter`).
- :func:`add_device_argument`: one ``--device`` option with one default, :data:`DEFAULT_DEVICE`,
  on every command that computes; values ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``
  (:func:`parse_device`).
"""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["DEFAULT_DEVICE", "DEVICE_CHOICES", "parse_device", "add_device_argument",
           "HelpFormatter", "ProbekitParser", "level", "share", "at_least_one", "at_least_zero",
           "positive", "probability", "seed", "existing_file", "json_object", "comma_list",
           "slug"]

#: The device every command uses unless told otherwise: CUDA when available, else the CPU.
DEFAULT_DEVICE = "auto"
#: Accepted device spellings (``cuda:N`` for any GPU index N).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def parse_device(value: str) -> str:
    """Check a ``--device`` value (``argparse`` type); returns it lower-cased."""
    v = str(value).strip().lower()
    if not _DEVICE.match(v):
        raise argparse.ArgumentTypeError(
            f"invalid device {value!r}: choose auto, cpu, cuda, cuda:N (a GPU index) or mps")
    return v


def _number(value: str, kind):
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
    return v


def _open_unit(value: str, what: str, example: str) -> float:
    v = _number(value, float)
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not {what}: it must lie strictly between "
                                         f"0 and 1 (e.g. {example})")
    return v


def level(value: str) -> float:
    """A significance level (``--alpha``; ``argparse`` type): strictly between 0 and 1."""
    return _open_unit(value, "a level", "0.05")


def share(value: str) -> float:
    """A share of a whole (``argparse`` type): strictly between 0 and 1."""
    return _open_unit(value, "a share", "0.2")


def at_least_one(value: str) -> int:
    """A count of steps or replicates (``argparse`` type): an integer >= 1."""
    v = _number(value, int)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= 1")
    return v


def at_least_zero(value: str) -> int:
    """A count that may be zero (``argparse`` type), e.g. warm-up steps: an integer >= 0."""
    v = _number(value, int)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= 0")
    return v


def positive(value: str) -> float:
    """A positive number (``argparse`` type), e.g. a learning rate: a finite float > 0."""
    v = _number(value, float)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{value} must be a number > 0")
    return v


def probability(value: str) -> float:
    """A rate such as a dropout (``argparse`` type): from 0 (included) to 1 (excluded)."""
    v = _number(value, float)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie in [0, 1) (e.g. 0.05)")
    return v


#: Largest seed numpy's generators accept from the command line (2**32 - 1).
SEED_MAX = 2**32 - 1


def seed(value: str) -> int:
    """A random seed (``argparse`` type): an integer from 0 to 2**32 - 1."""
    v = _number(value, int)
    if not 0 <= v <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is not a seed: it must be an integer from 0 "
                                         f"to {SEED_MAX}")
    return v


def existing_file(value: str) -> str:
    """A file that must exist (``argparse`` type), e.g. ``report --meta``."""
    from pathlib import Path

    if not Path(value).expanduser().is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return value


def json_object(value: str) -> dict:
    """A JSON object (``argparse`` type), given inline (``'{"k": 1}'``) or as the path of a
    file holding one (an arguments file); a malformed one is refused, naming the file, the line
    and the column."""
    import json
    from pathlib import Path

    path = Path(value).expanduser()
    where = "inline JSON"
    if not value.lstrip().startswith("{") and path.is_file():
        where = f"file {value}"
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"file {path}: cannot be read as UTF-8 text "
                                             f"({exc})") from None
    try:
        d = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{where}: not valid JSON ({exc.msg} at line "
                                         f"{exc.lineno}, column {exc.colno})") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"{where}: expected a JSON object ({{...}}), found "
                                         f"{type(d).__name__}")
    return d


def comma_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the one parser of comma-separated flag values
    (items stripped, empty ones dropped)."""
    return [v.strip() for v in str(value).split(",") if v.strip()]


def slug(*parts, empty: str = "") -> str:
    """``parts`` joined by ``_`` as a file-name-safe word: every run of characters other than
    letters, digits, ``_``, ``.`` and ``-`` becomes ``-`` (``empty`` when nothing is left)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(map(str, parts))).strip("-") or empty


def add_device_argument(parser: argparse.ArgumentParser, what: str = "the encoder",
                        default: str | None = DEFAULT_DEVICE, note: str = "") -> None:
    """Add ``--device`` to ``parser`` (the same option and default on every command)."""
    parser.add_argument(
        "--device", type=parse_device, default=default, metavar="DEVICE",
        help=f"where {what} runs: auto (CUDA when available, else the CPU), cpu, cuda, "
             f"cuda:N or mps{note}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions/epilogs as written and appends ``(default: X)`` to every option
    whose default is meaningful (not ``None`` or ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if "%(default)" in h or not action.option_strings:
            return h
        d = action.default
        if d is None or d is False or d is argparse.SUPPRESS or isinstance(
                action, (argparse._HelpAction, argparse._VersionAction)):
            return h
        return h + " (default: %(default)s)"


class ProbekitParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with the shared conventions (module docstring).

    ``top=True`` is the ``probekit`` parser itself: it holds the real defaults of ``-q``/``-v``;
    sub-parsers only set them when given, so a flag before the subcommand is not reset.
    """

    def __init__(self, *args, top: bool = False, **kwargs) -> None:
        if kwargs.get("formatter_class") in (None, argparse.HelpFormatter,
                                             argparse.RawDescriptionHelpFormatter,
                                             argparse.ArgumentDefaultsHelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="count",
                          default=0 if top else argparse.SUPPRESS,
                          help="more log output (-vv: debug)")
        self.add_argument("-q", "--quiet", action="store_true",
                          default=False if top else argparse.SUPPRESS,
                          help="only warnings and errors, no progress bars")
