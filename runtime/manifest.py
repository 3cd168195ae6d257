"""The bundle manifest: what `vae-export` writes and `vae_runtime` trusts only after checking it.

A bundle is a directory with `manifest.json` and the model files it lists. Every file entry
carries its role, format, precision, tensor names and shapes, sha256 and size.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vae_runtime.errors import BundleError

MANIFEST = "manifest.json"
FORMAT = "vae-digits-bundle"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 1 << 20
KINDS = ("vae", "cvae")
ROLES = ("encoder", "decoder")
PRIOR = "prior"  # the role of a fitted latent prior (prior.json), sampled by `Generator.generate`
FORMATS = {"onnx": ".onnx", "tflite": ".tflite", "json": ".json"}
PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: its name, shape ("batch" for the dynamic axis) and dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelFile:
    """One model file of the bundle and what was measured about it at export."""

    path: str
    role: str
    format: str
    precision: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str
    size: int
    default: bool = True
    parity: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    batch_sizes: tuple[int, ...] = ()  # static batch sizes (one signature each); () = dynamic batch
    recommended: bool = False  # the file to pick on an edge device (fast and within its bounds)


@dataclass(frozen=True)
class Manifest:
    """The typed manifest.json of a bundle."""

    kind: str
    latent_dim: int
    num_classes: int
    labels: tuple[str, ...]
    image_shape: tuple[int, int, int]
    run_id: str
    files: tuple[ModelFile, ...]
    default_temperature: float = 1.0
    omitted: tuple[dict[str, str], ...] = ()  # variants not written, each {"file": ..., "reason": ...}
    training: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def conditional(self) -> bool:
        return self.kind == "cvae"

    @property
    def prior(self) -> ModelFile | None:
        """The fitted latent prior (prior.json) that `generate` samples from, if the bundle has one."""
        return next((entry for entry in self.files if entry.role == PRIOR), None)

    def find(self, role: str, format: str, precision: str | None = None) -> ModelFile | None:
        """The file for `role` in `format`: the named precision, else the default one."""
        for entry in self.files:
            wanted = precision == entry.precision or (precision is None and entry.default)
            if entry.role == role and entry.format == format and wanted:
                return entry
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a parsed manifest.json; anything off raises BundleError naming the field."""
        if not isinstance(data, dict):
            raise BundleError("manifest.json must hold a JSON object")
        if data.get("format") != FORMAT:
            raise BundleError(f"manifest.json is not a {FORMAT} manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {version!r} is not supported (this runtime reads "
                f"{FORMAT_VERSION}); re-export the bundle or upgrade vae-digits"
            )
        kind = _one_of(data, "kind", KINDS)
        latent_dim = _positive_int(data, "latent_dim")
        num_classes = _positive_int(data, "num_classes") if kind == "cvae" else 0
        labels = tuple(_string_list(data, "labels", num_classes))
        image_shape = tuple(_int_list(data, "image_shape", 3))
        files = data.get("files")
        if not isinstance(files, list) or not files:
            raise BundleError("manifest.json field 'files' must be a non-empty list")
        return cls(
            kind=kind,
            latent_dim=latent_dim,
            num_classes=num_classes,
            labels=labels,
            image_shape=image_shape,
            run_id=_string(data, "run_id"),
            files=tuple(_model_file(entry) for entry in files),
            training=_mapping(data, "training"),
            producer=_mapping(data, "producer"),
            created=str(data.get("created", "")),
        )


def read_manifest(bundle: Path) -> Manifest:
    """Read and validate `bundle/manifest.json` without touching any model file."""
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


def _model_file(data: Any) -> ModelFile:
    if not isinstance(data, dict):
        raise BundleError("each entry of manifest 'files' must be an object")
    path = _string(data, "path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or len(pure.parts) != 1 or pure.name in ("", ".", "..") or "\\" in path:
        raise BundleError(f"manifest file name {path!r} must be a plain name inside the bundle")
    file_format = _one_of(data, "format", tuple(FORMATS))
    if not path.endswith(FORMATS[file_format]):
        raise BundleError(f"manifest file {path!r} does not end in {FORMATS[file_format]}")
    sha = _string(data, "sha256")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise BundleError(f"manifest sha256 of {path!r} is not 64 hex digits")
    return ModelFile(
        path=path,
        role=_one_of(data, "role", ROLES),
        format=file_format,
        precision=_one_of(data, "precision", PRECISIONS),
        inputs=_tensors(data, "inputs"),
        outputs=_tensors(data, "outputs"),
        sha256=sha,
        size=_positive_int(data, "size"),
        default=bool(data.get("default", True)),
        parity=_mapping(data, "parity"),
        speed=_mapping(data, "speed"),
        note=str(data.get("note", "")),
    )


def _tensors(data: dict, key: str) -> tuple[TensorSpec, ...]:
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise BundleError(f"manifest field {key!r} must be a non-empty list of tensors")
    specs = []
    for item in items:
        if not isinstance(item, dict):
            raise BundleError(f"manifest field {key!r} must list objects")
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(
            (isinstance(d, int) and not isinstance(d, bool) and d > 0) or d == "batch" for d in shape
        ):
            raise BundleError(f"manifest shape of tensor in {key!r} must list sizes or 'batch'")
        specs.append(TensorSpec(_string(item, "name"), tuple(shape), _string(item, "dtype")))
    return tuple(specs)


def _string(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BundleError(f"manifest field {key!r} must be a non-empty string")
    return value


def _one_of(data: dict, key: str, allowed: tuple[str, ...]) -> str:
    value = data.get(key)
    if value not in allowed:
        raise BundleError(f"manifest field {key!r} is {value!r}; expected one of {allowed}")
    return value


def _positive_int(data: dict, key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BundleError(f"manifest field {key!r} must be a positive integer")
    return value


def _int_list(data: dict, key: str, length: int) -> list[int]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != length:
        raise BundleError(f"manifest field {key!r} must list {length} positive integers")
    return [_positive_int({key: v}, key) for v in value]


def _string_list(data: dict, key: str, length: int) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or len(value) != length:
        raise BundleError(f"manifest field {key!r} must list {length} label names")
    if not all(isinstance(v, str) and v for v in value) or len(set(value)) != length:
        raise BundleError(f"manifest field {key!r} must hold distinct non-empty names")
    return value


def _mapping(data: dict, key: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise BundleError(f"manifest field {key!r} must be an object")
    return _finite(value, key)


def _finite(value: Any, key: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise BundleError(f"manifest field {key!r} holds a non-finite number")
    if isinstance(value, dict):
        return {k: _finite(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v, key) for v in value]
    return value
