"""What every vae-digits command shares: typer apps whose errors are one line, with exit codes that mean
something (2: the input is wrong, 1: the work failed, 130: interrupted), and never a traceback.

Command modules import only this and typer at start-up; the work (onnxruntime, TensorFlow) is imported
inside the command, so `--help` stays fast.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, overload

import typer

from vae_runtime.errors import VaeDigitsError, WorkError

USAGE, FAILED, INTERRUPTED = 2, 1, 130
PACKAGE = "vae-digits"


def new_app(help: str, *, commands: bool = False) -> typer.Typer:
    """A typer app with vae-digits' conventions: rich --help, -h, completion, no pretty tracebacks."""
    return typer.Typer(
        help=help,
        add_completion=True,
        no_args_is_help=commands,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"{_prog()} {version(PACKAGE)}")
        raise typer.Exit


Version = Annotated[
    bool,
    typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
]
BUNDLE_HELP = "Bundle directory, or an embedded bundle: cvae-16d (the default), cvae-tiny, cvae (2-D), vae."
Bundle = Annotated[Path | None, typer.Option(metavar="DIR", help=BUNDLE_HELP, show_default=False)]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing --out.")]


def data_option(
    help: str = "MNIST npz / IDX directory (default: the Keras cache, downloaded if missing).",
) -> Any:  # typer.Option is typed Any, to stand in for a parameter's default
    """The --data option with a help text for the command: `Annotated[Path | None, data_option()]`."""
    return typer.Option(metavar="PATH", help=help, show_default=False)


def main(app: typer.Typer, args: list[str] | None = None) -> NoReturn:
    """Run `app`; every error ends as one line on stderr and an exit code (see the module docstring)."""
    try:
        code = app(args=args, prog_name=_prog(), standalone_mode=False)
    except typer.TyperException as error:  # click's usage errors: a bad option or value
        message = " ".join(error.format_message().replace("Value error, ", "").split())
        fail(message, getattr(error, "exit_code", USAGE) or USAGE)
    except typer.Abort:
        fail("aborted", INTERRUPTED)
    except WorkError as error:
        fail(str(error), FAILED)
    except VaeDigitsError as error:
        fail(str(error), USAGE)
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        fail(f"{where}{error.strerror or error}", FAILED)
    except MemoryError:
        fail("out of memory: ask for fewer digits at once", FAILED)
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int = USAGE) -> NoReturn:
    print(f"{_prog()}: error: {message}", file=sys.stderr)
    sys.exit(code)


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """A typer parser: an int in [low, high]; the error names the value and the bounds."""

    def parse(text: str | int) -> int:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise typer.BadParameter(f"{value} is not {bounds}")
        return value

    return parse


def number(low: float, high: float = math.inf) -> Callable[[str], float]:
    """A typer parser: a finite float in [low, high]."""

    def parse(text: str | float) -> float:
        try:
            value = float(text)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not (low <= value <= high and math.isfinite(value)):
            bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f">= {low:g}"
            raise typer.BadParameter(f"{text} is not a finite number {bounds}")
        return value

    return parse


@overload
def parse_label(text: str) -> int | str: ...


@overload
def parse_label(text: None) -> None: ...


def parse_label(text: str | None) -> int | str | None:
    """A --label value: an int when it is one (so that 12 is "out of range"), else a label name."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _prog() -> str:
    return Path(sys.argv[0]).name or PACKAGE
