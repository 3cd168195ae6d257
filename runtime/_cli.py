"""What every vae-digits command shares: one-line errors, quiet TensorFlow, no tracebacks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from vae_runtime.errors import VaeDigitsError

BundleOption = Annotated[
    Path | None, typer.Option(help="bundle directory [default: the embedded CVAE]", show_default=False)
]
MnistOption = Annotated[
    Path | None,
    typer.Option(
        help="MNIST npz / IDX directory [default: the Keras cache, downloaded if missing]", show_default=False
    ),
]


def parse_label(text: str | None) -> int | str | None:
    """A --label value: an int when it is one (so that 12 is "out of range"), else a label name."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def fail(message: str, code: int = 2) -> NoReturn:
    prog = Path(sys.argv[0]).name or "vae-digits"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def run(app: typer.Typer, args: list[str] | None = None) -> NoReturn:
    """Run a Typer app; usage errors and VaeDigitsError become one line on stderr and exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name=Path(sys.argv[0]).name, standalone_mode=False)
    except VaeDigitsError as error:
        fail(str(error))
    except typer.Abort:
        fail("aborted", 130)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        fail(f"{where}{error.strerror or error}")
    except Exception as error:
        # Typer vendors click, so its UsageError is not importable by a public name:
        # every click usage error carries format_message().
        if not hasattr(error, "format_message"):
            raise
        fail(" ".join(error.format_message().split()))
    sys.exit(code if isinstance(code, int) else 0)
