"""`vae-bench`: every model file of a bundle timed on this machine, and which decoder to use here.

The figures depend on the machine and its load, so these tests check what the report holds (every shipped
file, every batch, a decoder for each task), never a speed.
"""

import json

import pytest

from conftest import HAS_LITERT, run_cli
from vae_runtime.bundle import embedded_bundle, read_manifest
from vae_runtime.manifest import ROLES
from vae_runtime.tools.bench import BATCHES, time_bundle


def model_files(name: str) -> set[str]:
    return {f.path for f in read_manifest(embedded_bundle(name)).files if f.role in ROLES}


def test_every_model_file_is_timed_at_every_batch():
    report = time_bundle("vae", rounds=1, repeats=1)
    timed = {t.file.path for t in report.timings}
    assert timed | set(report.skipped) == model_files("vae") and not timed & set(report.skipped)
    assert (set(report.skipped) == set()) == HAS_LITERT  # without LiteRT its files are named, not timed
    for timing in report.timings:
        assert set(timing.per_second) == set(BATCHES) and min(timing.per_second.values()) > 0
    for task, batch in (("single", 1), ("bulk", 256)):
        chosen = report.use()[task]
        decoders = [t for t in report.timings if t.file.role == "decoder"]
        assert chosen.file.role == "decoder"
        assert chosen.per_second[batch] == max(t.per_second[batch] for t in decoders)


def test_cli_json_names_each_file_and_the_command_to_use():
    result = run_cli("vae-bench", "cvae", "--rounds", "1", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["file"]: row for row in report["files"]}
    assert set(rows) | set(report["not_timed"]) == model_files("cvae")
    assert all(set(row["per_second"]) == {"1", "16", "256"} for row in rows.values())
    assert report["machine"] and report["bundle"].endswith("cvae")
    for task in ("single", "bulk"):
        use = report["use"][task]
        row = rows[use["file"]]
        assert row["role"] == "decoder"
        assert use["command"].startswith(f"vae-generate --bundle cvae --backend {row['backend']}")
        assert ("--precision" in use["command"]) == (row["precision"] != "fp32")


def test_cli_table_lists_every_file_and_both_choices():
    result = run_cli("vae-bench", "--rounds", "1", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listed = {line.split()[0] for line in lines[2:]}
    assert model_files("cvae-16d") <= listed  # the default bundle
    assert any(line.startswith("single digits:") and "vae-generate --backend" in line for line in lines)
    assert any(line.startswith("bulk (256 at once):") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "0"], "'--rounds': 0 is not between 1 and 100"),
        (["--repeats", "x"], "'--repeats': 'x' is not an integer"),
        (["/no/such/bundle"], "bundle /no/such/bundle is not a directory"),
    ],
)
def test_bad_input_is_one_line(args, message):
    result = run_cli("vae-bench", *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
