"""Issue 15: the CLI conventions, table-driven over every subcommand."""

from __future__ import annotations

import argparse

import pytest

from probekit import __version__
from probekit.cli import build_parser, main
from probekit.cliutil import DEFAULT_DEVICE, parse_device


def _leaves(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for a in subs:
        for name, sp in a.choices.items():
            yield from _leaves(sp, path + (name,))


PARSER = build_parser()
COMMANDS = {" ".join(path): p for path, p in _leaves(PARSER) if path}
#: Commands that compute with torch: each must take --device with the one default.
#: (`encoders info` is left to the encoders' owner: probekit/encoders/ is being rewritten.)
COMPUTING = {"demo", "study run", "extract", "probe", "train"}
LEFT_TO_OWNERS = {("encoders info", ("--device",))}


def test_every_subcommand_is_listed():
    assert {"corpus summary", "corpus validate", "corpus synth", "corpus align", "extract",
            "probe", "analyze", "report", "demo", "study run", "study show", "encoders list",
            "encoders info"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_defaults_and_every_option_has_help(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a default such as whisper-tiny.en
    parser = COMMANDS[command]
    undocumented = [a.option_strings or [a.dest] for a in parser._actions
                    if not a.help and not isinstance(a, argparse._HelpAction)
                    and (command, tuple(a.option_strings)) not in LEFT_TO_OWNERS]
    assert not undocumented, f"{command}: options without help text: {undocumented}"
    with pytest.raises(SystemExit) as exc:
        main(command.split() + ["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "-q, --quiet" in text and "-v, --verbose" in text
    for a in parser._actions:
        if a.option_strings and a.default not in (None, False, argparse.SUPPRESS) \
                and not isinstance(a, argparse._HelpAction) \
                and (command, tuple(a.option_strings)) not in LEFT_TO_OWNERS:
            assert f"(default: {a.default})" in " ".join(text.split()), (command, a.dest)


@pytest.mark.parametrize("command", sorted(COMPUTING))
def test_device_option_is_the_same_everywhere(command):
    parser = COMMANDS[command]
    dev = next(a for a in parser._actions if "--device" in a.option_strings)
    assert dev.type is parse_device
    # One default everywhere; the study takes its config's (itself auto by default).
    assert dev.default == (None if command == "study run" else DEFAULT_DEVICE)


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:1", "MPS"])
def test_device_values_accepted(value):
    args = PARSER.parse_args(["probe", "--store", "s", "--out", "o", "--device", value])
    assert args.device == value.lower()


def test_bad_device_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        PARSER.parse_args(["extract", "--encoder", "e", "--corpus", "c", "--out", "o",
                           "--device", "gpu"])
    assert exc.value.code == 2 and "invalid device 'gpu'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-q", "demo"], ["demo", "-q"], ["-v", "demo"], ["demo", "-v"],
                                  ["-q", "corpus", "synth"], ["corpus", "synth", "-q"],
                                  ["corpus", "-q", "synth"]])
def test_quiet_and_verbose_before_or_after_the_subcommand(argv):
    args = PARSER.parse_args(argv)
    assert args.quiet == ("-q" in argv) and args.verbose == ("-v" in argv)


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"probekit {__version__}"
