"""A bundle on disk: the bundles embedded in the package, and a bundle's manifest.json read, checked,
and each file it lists verified before use."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from vae_runtime.errors import BundleError, VaeDigitsError
from vae_runtime.manifest import MANIFEST, MAX_MANIFEST_BYTES, Manifest, ModelFile

DEFAULT = "cvae-16d"  # the embedded bundle Generator.load() and every command use unless told otherwise
EMBEDDED_BUNDLES = (DEFAULT, "cvae-tiny", "cvae", "vae")  # the 16-D CVAEs, and the 2-D CVAE and VAE


def embedded_bundle(name: str = DEFAULT) -> Path:
    """The path of a pretrained bundle shipped inside the package.

    Args:
        name: "cvae-16d" (the default: a conditional VAE with a 16-D latent and a fitted prior, the
            best digits), "cvae-tiny" (the same at half the decoder's compute, for microcontrollers
            with 128 KB of RAM), "cvae" (the 2-D conditional VAE, to explore a 2-D latent) or "vae"
            (the 2-D plain VAE).

    Returns:
        The bundle's directory inside the installed package.

    Raises:
        VaeDigitsError: `name` is not one of the embedded bundles.

    Examples:
        >>> embedded_bundle("vae").name
        'vae'
    """
    if name not in EMBEDDED_BUNDLES:
        raise VaeDigitsError(f"there is no embedded {name!r} bundle; choose one of {EMBEDDED_BUNDLES}")
    return Path(str(resources.files("vae_runtime") / "bundles" / name))


def bundle_path(value: Any) -> Path:
    """A bundle directory; the name of an embedded bundle ("cvae") when no such directory is here."""
    if not isinstance(value, str | os.PathLike):
        raise VaeDigitsError(f"bundle must be a path, not {type(value).__name__}")
    if str(value) in EMBEDDED_BUNDLES and not Path(value).exists():
        return embedded_bundle(str(value))
    return Path(value)


def read_manifest(bundle: Path) -> Manifest:
    """Read and validate a bundle's manifest.json without touching any model file.

    Args:
        bundle: The bundle directory.

    Returns:
        The checked manifest.

    Raises:
        BundleError: The directory or its manifest.json is missing, unreadable, larger than 1 MiB,
            not JSON, or not a valid manifest (see `Manifest.from_dict`).
    """
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise BundleError(f"bundle {bundle} is not a directory")
    path = bundle / MANIFEST
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path} is {size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BundleError(f"bundle {bundle} has no {MANIFEST}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BundleError(f"{path} is not readable JSON ({error})") from None
    return Manifest.from_dict(data)


def verified_path(bundle: Path, entry: ModelFile) -> Path:
    """The file of `entry` inside `bundle`, after checking its place, size and sha256."""
    bundle = Path(bundle).resolve()
    path = (bundle / entry.path).resolve()
    if path.parent != bundle:
        raise BundleError(f"manifest names {entry.path!r}, which is not a file of bundle {bundle}")
    try:
        if path.stat().st_size != entry.size:  # before reading: the size is bounded, the file may not be
            raise BundleError(
                f"bundle file {entry.path} does not match its manifest checksum (size differs: damaged "
                "or altered)"
            )
        data = path.read_bytes()
    except OSError as error:
        raise BundleError(f"bundle file {entry.path} cannot be read ({error.strerror})") from None
    if len(data) != entry.size or sha256_hex(data) != entry.sha256:
        raise BundleError(
            f"bundle file {entry.path} does not match its manifest checksum (damaged or altered)"
        )
    return path


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
