"""`vae-bench [BUNDLE]`: time every model file of a bundle here, and say which decoder to use for single
digits and which for bulk."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from vae_runtime.clikit.common import BUNDLE_HELP, Version, integer, main, new_app

if TYPE_CHECKING:
    from vae_runtime.tools.bench import Report

app = new_app("Time a bundle's model files on this machine: which to use for single digits, which for bulk.")
EXAMPLES = """[b]Examples[/b]

  vae-bench                      (the default bundle, cvae-16d)
  vae-bench cvae --rounds 5
  vae-bench bundles/cvae --json > bench.json
"""


@app.command(epilog=EXAMPLES)
def bench(
    bundle: Annotated[
        str | None,
        typer.Argument(
            metavar="BUNDLE",
            help=BUNDLE_HELP,
            show_default=False,
        ),
    ] = None,
    rounds: Annotated[
        int, typer.Option(parser=integer(1, 100), help="Rounds over every file, 1-100; a figure is the best.")
    ] = 3,
    repeats: Annotated[
        int, typer.Option(parser=integer(1, 1000), help="Timed calls per file, batch and round, 1-1000.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    version: Version = False,
) -> None:
    """Time each encoder and decoder file of a bundle on every installed backend at batch 1, 16 and 256,
    as vae-generate runs them, and say which decoder to use here for single digits and for bulk.

    Run it on the device the bundle is for: the fastest file depends on the processor.
    """
    from vae_runtime.tools.bench import time_bundle

    report = time_bundle(bundle, rounds, repeats)
    print(json.dumps(report.to_dict(), indent=2) if as_json else _table(report))


def _table(report: Report) -> str:
    from vae_runtime.tools.bench import BATCHES, advice

    lines = [
        f"{report.bundle} on {report.machine}: rows per second, each file run as vae-generate runs it",
        f"{'file':<26}{'backend':<9}{'KiB':>6}" + "".join(f"{f'batch {b}':>13}" for b in BATCHES),
    ]
    for t in report.timings:
        lines.append(
            f"{t.file.path:<26}{t.file.format:<9}{t.file.size / 1024:>6.0f}"
            + "".join(f"{t.per_second[b]:>13,.0f}" for b in BATCHES)
        )
    lines += [f"{name:<26}not timed: {why}" for name, why in report.skipped.items()]
    for what, fastest in report.use().items():
        task = "single digits" if what == "single" else f"bulk ({BATCHES[-1]} at once)"
        lines.append(f"{task + ':':<22}{fastest.file.path:<24}{advice(fastest, report.given)}")
    return "\n".join(lines)


def run() -> None:
    main(app)
