"""What every vae-digits command shares: argparse with one-line errors, and no tracebacks.

argparse (not a CLI framework) because start-up is part of the product: `vae-generate` must reach its
PNG in well under half a second, and the stdlib parser costs nothing to import.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from vae_runtime.errors import VaeDigitsError


def fail(message: str, code: int = 2) -> NoReturn:
    prog = Path(sys.argv[0]).name or "vae-digits"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


class _ShowDefaults(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help when X says something (not None / False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            help += " (default: %(default)s)"
        return help


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, exit 2; defaults shown in --help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _ShowDefaults)
        kwargs.setdefault("prog", Path(sys.argv[0]).name or None)
        super().__init__(*args, **kwargs)
        # A latent such as "-1.5,0" is a value, not an option: widen argparse's negative-number test.
        self._negative_number_matcher = re.compile(r"^-\.?\d[\d.,eE+-]*$")

    def error(self, message: str) -> NoReturn:
        fail(" ".join(message.split()))


def subcommands(parser: argparse.ArgumentParser) -> Callable[..., Parser]:
    """`add(name, handler, help)` -> a sub-parser whose parsed options are passed to `handler`."""
    group = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def add(name: str, handler: Callable, help: str) -> Parser:
        sub = group.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    return add


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is not {bounds}")
        return value

    return parse


def number(low: float) -> Callable[[str], float]:
    """An argparse type: a finite float >= low."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number >= {low}")
        return value

    return parse


def add_bundle_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bundle", type=Path, metavar="DIR", help="bundle directory (default: the embedded CVAE)"
    )


def add_mnist_option(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help=help or "MNIST npz / IDX directory (default: the Keras cache, downloaded if missing)",
    )


def parse_label(text: str | None) -> int | str | None:
    """A --label value: an int when it is one (so that 12 is "out of range"), else a label name."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def run(parser: argparse.ArgumentParser, args: list[str] | None = None) -> NoReturn:
    """Parse, call the chosen handler with the options as keywords; errors become one line, exit 2."""
    options = vars(parser.parse_args(args))
    handler = options.pop("handler")
    try:
        handler(**options)
    except VaeDigitsError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        fail(f"{where}{error.strerror or error}")
    sys.exit(0)
