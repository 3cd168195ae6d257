"""Check the C library kept in the repository (c/) against the bundle it came from.

    python scripts/check_c_sources.py [C_DIR] [BUNDLE_DIR]     (default: c runtime/bundles/cvae-16d)
    python scripts/check_c_sources.py --update [C_DIR] [BUNDLE_DIR]

Every file of C_DIR matches its manifest (size, sha256); the bundle's manifest.json has the sha256 the
C sources name, and its prior.json is C_DIR's; and the sources are what vae_export.c_code generates from
C_DIR's decoder.micro.tflite and that prior today, byte for byte. scripts/build_pretrained.sh regenerates
them (`vae-export c`) whenever it rebuilds the bundle; --update rewrites the sources alone, without
TensorFlow, after a change to vae_export's C templates or generator.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vae_export.c_code import CInfo, c_sources
from vae_export.micro import MICRO_FILE, PRIOR_FILE, read_micro_manifest, refresh_sources
from vae_runtime.bundle import read_manifest, sha256_hex
from vae_runtime.errors import VaeDigitsError
from vae_runtime.manifest import MANIFEST
from vae_runtime.prior import Prior

ROOT = Path(__file__).resolve().parent.parent


def check(c_dir: Path, bundle: Path, update: bool = False) -> str:
    """A one-line problem, or "" when c_dir is what bundle and its micro file give (with `update`,
    after rewriting the sources that differ)."""
    manifest = read_micro_manifest(c_dir)
    source = read_manifest(bundle)
    if sha256_hex((bundle / MANIFEST).read_bytes()) != manifest["source_bundle_sha256"]:
        return f"{c_dir} was generated from another bundle than {bundle}: run scripts/build_pretrained.sh"
    prior = None
    if source.prior is not None:
        if (bundle / source.prior.path).read_bytes() != (c_dir / PRIOR_FILE).read_bytes():
            return f"{c_dir / PRIOR_FILE} is not {bundle / source.prior.path}"
        prior = Prior.load(c_dir / PRIOR_FILE, source.latent_dim, source.labels)
    info = CInfo(
        source.labels,
        source.default_temperature,
        manifest["max_temperature"],
        manifest["source_bundle_sha256"],
    )
    sources = c_sources((c_dir / MICRO_FILE).read_bytes(), prior, info)
    stale = {name: text for name, text in sources.items() if _text(c_dir / name) != text}
    if stale and update:
        refresh_sources(c_dir, stale)
    elif stale:
        return f"{c_dir / sorted(stale)[0]} differs from what vae-export c generates; run {__file__} --update"
    return ""


def _text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def main() -> None:
    update = "--update" in sys.argv
    paths = [arg for arg in sys.argv[1:] if arg != "--update"]
    c_dir = Path(paths[0]) if paths else ROOT / "c"
    bundle = Path(paths[1]) if len(paths) > 1 else ROOT / "runtime" / "bundles" / "cvae-16d"
    try:
        problem = check(c_dir, bundle, update)
    except VaeDigitsError as error:
        problem = str(error)
    if problem:
        raise SystemExit(problem)
    print(f"{c_dir}: the sources of {bundle} ({read_micro_manifest(c_dir)['source_bundle_sha256'][:12]})")


if __name__ == "__main__":
    main()
