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
import re

__all__ = ["DEFAULT_DEVICE", "DEVICE_CHOICES", "parse_device", "add_device_argument",
           "HelpFormatter", "ProbekitParser"]

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
