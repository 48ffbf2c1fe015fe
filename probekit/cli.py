"""The ``probekit`` command line.

Each subcommand lives beside the code it drives and registers itself here through a
``register(subparsers)`` function, so adding a command means editing one list below.
Errors that probekit raises on purpose (:class:`probekit.ProbekitError`) print one line and
exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from probekit import __version__
from probekit.errors import ProbekitError

#: Modules that provide ``register(subparsers)``, imported in this order when the parser is
#: built. None is optional: a module that fails to import (a missing dependency included) is
#: an error of the whole command line, never a silently absent subcommand.
COMMAND_MODULES = [
    "probekit.corpus.cli",
    "probekit.encoders.cli",
    "probekit.probes.cli",
    "probekit.demo",
    "probekit.store.cli",
    "training.cli",
    "probekit.cli_analyze",
    "probekit.report.cli",
    "probekit.study.cli",
    "probekit.cli_compare",
]


def build_parser() -> argparse.ArgumentParser:
    from probekit.cliutil import ProbekitParser

    # Every sub-parser is a ProbekitParser too (argparse reuses the parent's class): -q/-v are
    # accepted before or after the subcommand and --help shows defaults everywhere.
    parser = ProbekitParser(
        prog="probekit", top=True,
        description="Layer-by-layer probes for speaker-group unfairness in speech encoders.",
        epilog="examples:\n  probekit demo\n  probekit corpus synth --preset small --out corpus/\n"
               "  probekit encoders list",
    )
    parser.add_argument("--version", action="version", version=f"probekit {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        rc = args.func(args)
    except ProbekitError as exc:
        print(f"probekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("probekit: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
