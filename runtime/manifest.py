"""The bundle manifest: what `vae-export` writes and `vae_runtime` trusts only after checking it.

A bundle is a directory with `manifest.json` and the model files it lists. Every file entry
carries its role, format, precision, tensor names and shapes, sha256 and size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from vae_runtime.errors import BundleError
from vae_runtime.jsonfields import boolean, bounded_int, int_list, is_dim, mapping, one_of
from vae_runtime.spec import SPEC

_SPEC = SPEC["manifest"]  # bundle_spec.json: the limits the browser library checks too
MANIFEST: str = _SPEC["file"]
FORMAT: str = _SPEC["format"]
FORMAT_VERSION: int = _SPEC["format_version"]
MAX_MANIFEST_BYTES: int = _SPEC["max_bytes"]
# Hard limits, checked before anything is sized from a manifest (README: "what is checked on load").
MAX_LATENT_DIM: int = _SPEC["max_latent_dim"]
MAX_CLASSES: int = _SPEC["max_classes"]
MAX_FILES: int = _SPEC["max_files"]
MAX_FILE_BYTES: int = _SPEC["max_file_bytes"]
MAX_NAME_CHARS: int = _SPEC["max_name_chars"]
MAX_NOTE_CHARS: int = _SPEC["max_note_chars"]
MAX_TENSORS: int = _SPEC["max_tensors"]
MAX_AXES: int = _SPEC["max_axes"]
MAX_BATCH_SIZE: int = _SPEC["max_batch_size"]
MAX_TEMPERATURE: float = _SPEC["max_temperature"]
IMAGE_SHAPE: tuple[int, int, int] = tuple(_SPEC["image_shape"])
KINDS: tuple[str, ...] = tuple(_SPEC["kinds"])
ROLES: tuple[str, ...] = tuple(_SPEC["roles"])
PRIOR: str = _SPEC["prior_role"]  # the role of a fitted latent prior (prior.json), sampled by `generate`
FORMATS: dict[str, str] = _SPEC["formats"]
PRECISIONS: tuple[str, ...] = tuple(_SPEC["precisions"])
Shapes = dict[str, tuple[int | str, ...]]  # tensor name -> shape, "batch" on the dynamic axis


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output, as the manifest declares it.

    Attributes:
        name: The tensor's name: "image", "label", "z", "z_mean" or "z_log_var".
        shape: Its shape, with "batch" on the batch axis, e.g. ("batch", 28, 28, 1).
        dtype: Always "float32".
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelFile:
    """One file of the bundle, and what was measured about it at export.

    Attributes:
        path: The file's name inside the bundle, e.g. "decoder.int8.tflite".
        role: "encoder", "decoder", or "prior" (the fitted latent prior, prior.json).
        format: "onnx", "tflite", or "json" (the prior).
        precision: "fp32", "fp16", "dynamic" (int8 weights) or "int8".
        inputs: The model's inputs.
        outputs: The model's outputs.
        sha256: The file's sha256, checked on load.
        size: The file's size in bytes, checked on load.
        default: Whether this is the file of its role and format that loads when no precision
            is named (exactly one is).
        parity: How far its outputs are from the reference (Keras for fp32, the fp32 file for a
            variant): max_abs_diff, mean_abs_diff, psnr_db, ...; for the prior, what it was
            fitted on.
        speed: Samples per second at export ({"batch", "per_second"}, and "vs_fp32" for a
            variant).
        note: Why a variant is not the default, if it is not.
        batch_sizes: The static batch sizes of a TFLite file (one signature each); () for a
            dynamic batch.
        recommended: The file to pick on an edge device: faster than fp32 and within its error
            bounds.
    """

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
    # samples/s on the export host, named in "measured_on": information, never a choice (vae-bench measures
    # where the bundle runs)
    speed: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    batch_sizes: tuple[int, ...] = ()  # static batch sizes (one signature each); () = dynamic batch
    recommended: bool = False  # the file for edge devices: the int8 TFLite file (integer-only)


@dataclass(frozen=True)
class Manifest:
    """The typed manifest.json of a bundle, read by `vae_runtime.bundle.read_manifest` and checked field
    by field.

    Attributes:
        kind: "cvae" (conditional: takes labels) or "vae".
        latent_dim: The size of a latent z.
        num_classes: The number of labels (0 for a plain VAE).
        labels: The label names, in index order (() for a plain VAE).
        image_shape: Always (28, 28, 1).
        run_id: The training run the models come from.
        files: Every file of the bundle.
        default_temperature: The sampling temperature `Generator.generate` uses by default.
        omitted: Variants that the export did not ship, each {"file": ..., "reason": ...}.
        training: The training run's record: epochs, validation losses, data, ...
        producer: The versions of the tools that wrote the files.
        created: When the bundle was written (ISO 8601).
        format: Always "vae-digits-bundle".
        format_version: The manifest format's version; this runtime reads version 1.

    Examples:
        >>> from vae_runtime.bundle import embedded_bundle, read_manifest
        >>> manifest = read_manifest(embedded_bundle())
        >>> manifest.kind, manifest.latent_dim, manifest.find("decoder", "onnx").path
        ('cvae', 16, 'decoder.onnx')
    """

    kind: str
    latent_dim: int
    num_classes: int
    labels: tuple[str, ...]
    image_shape: tuple[int, int, int]
    run_id: str
    files: tuple[ModelFile, ...]
    default_temperature: float = 1.0
    omitted: tuple[dict[str, str], ...] = ()
    training: dict[str, Any] = field(default_factory=dict)
    producer: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def conditional(self) -> bool:
        """True for a CVAE, whose models take a label."""
        return self.kind == "cvae"

    @property
    def prior(self) -> ModelFile | None:
        """The entry of the fitted latent prior (prior.json) that `Generator.generate` samples
        from; None when the bundle has none (z is then drawn from N(0, I))."""
        return next((entry for entry in self.files if entry.role == PRIOR), None)

    def find(self, role: str, format: str, precision: str | None = None) -> ModelFile | None:
        """The file for a role in a format.

        Args:
            role: "encoder", "decoder" or "prior".
            format: "onnx", "tflite" or "json".
            precision: A precision such as "int8"; None for the default file.

        Returns:
            The entry, or None when the bundle has no such file.
        """
        for entry in self.files:
            wanted = precision == entry.precision or (precision is None and entry.default)
            if entry.role == role and entry.format == format and wanted:
                return entry
        return None

    def to_json(self) -> str:
        """The manifest as manifest.json's text: indented JSON, ending in a newline."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a parsed manifest.json: each field, the hard limits, and that the fields agree
        with each other.

        Args:
            data: The parsed JSON (untrusted).

        Returns:
            The manifest.

        Raises:
            BundleError: A field is missing, malformed, beyond a limit or disagrees with another;
                the one-line message names the field.
        """
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
        kind = one_of(data, "kind", KINDS)
        latent_dim = bounded_int(data, "latent_dim", MAX_LATENT_DIM)
        num_classes = bounded_int(data, "num_classes", MAX_CLASSES) if kind == "cvae" else 0
        if kind == "vae" and data.get("num_classes", 0) != 0:
            raise BundleError("manifest field 'num_classes' must be 0 for a plain VAE")
        labels = tuple(_string_list(data, "labels", num_classes))
        image_shape = tuple(int_list(data, "image_shape", 3))
        if image_shape != IMAGE_SHAPE:
            raise BundleError(f"manifest image_shape {list(image_shape)} is not {list(IMAGE_SHAPE)}")
        files = data.get("files")
        if not isinstance(files, list) or not files or len(files) > MAX_FILES:
            raise BundleError(
                f"manifest.json field 'files' must be a non-empty list of at most {MAX_FILES} entries"
            )
        manifest = cls(
            kind=kind,
            latent_dim=latent_dim,
            num_classes=num_classes,
            labels=labels,
            image_shape=image_shape,
            run_id=_string(data, "run_id"),
            files=tuple(_model_file(entry) for entry in files),
            default_temperature=_temperature(data.get("default_temperature", 1.0)),
            omitted=_omitted(data.get("omitted", [])),
            training=mapping(data, "training"),
            producer=mapping(data, "producer"),
            created=str(data.get("created", "")),
        )
        _check_consistency(manifest)
        return manifest


def expected_tensors(manifest: Manifest, role: str) -> tuple[Shapes, Shapes]:
    """The inputs and outputs {name: shape} that a file of `role` must have in this bundle."""
    image = ("batch", *manifest.image_shape)
    latent = ("batch", manifest.latent_dim)
    label = {"label": ("batch", manifest.num_classes)} if manifest.conditional else {}
    if role == "decoder":
        return {"z": latent, **label}, {"image": image}
    if role == "encoder":
        return {"image": image, **label}, {"z_mean": latent, "z_log_var": latent}
    return {}, {}


def _check_consistency(manifest: Manifest) -> None:
    """Every field that describes the same thing agrees; each file once; one default per role/format."""
    paths = [entry.path for entry in manifest.files]
    repeated = {path for path in paths if paths.count(path) > 1}
    if repeated:
        raise BundleError(f"manifest lists {sorted(repeated)[0]!r} more than once")
    triples = [(e.role, e.format, e.precision) for e in manifest.files]
    for triple in dict.fromkeys(triples):
        if triples.count(triple) > 1:
            raise BundleError("manifest lists more than one {} {} {} file".format(*triple))
    for entry in manifest.files:
        _check_entry(manifest, entry)
    groups = sorted({(e.role, e.format) for e in manifest.files})
    for role, file_format in groups:
        defaults = sum(e.default for e in manifest.files if (e.role, e.format) == (role, file_format))
        if defaults != 1:
            raise BundleError(
                f"manifest marks {defaults} {file_format} {role} files default; exactly 1 must be"
            )
    for file_format in sorted({f for _, f in groups if f != "json"}):
        missing = [role for role in ROLES if (role, file_format) not in groups]
        if missing:
            raise BundleError(f"manifest has {file_format} files but no {file_format} {missing[0]}")
    for role in (*ROLES, PRIOR):
        if sum(e.recommended for e in manifest.files if e.role == role) > 1:
            raise BundleError(f"manifest recommends more than one {role} file")
    if sum(e.role == PRIOR for e in manifest.files) > 1:
        raise BundleError("manifest lists more than one prior")


def _check_entry(manifest: Manifest, entry: ModelFile) -> None:
    if (entry.role == PRIOR) != (entry.format == "json"):
        raise BundleError(f"manifest file {entry.path!r}: only the prior is a json file")
    if entry.batch_sizes and entry.format != "tflite":
        raise BundleError(f"manifest file {entry.path!r}: batch_sizes are for tflite files only")
    inputs, outputs = expected_tensors(manifest, entry.role)
    for key, declared, wanted in (("inputs", entry.inputs, inputs), ("outputs", entry.outputs, outputs)):
        names = [t.name for t in declared]
        if len(set(names)) != len(names) or {t.name: t.shape for t in declared} != wanted:
            raise BundleError(
                f"manifest {key} of {entry.path} {_describe(declared)} disagree with a {manifest.kind} of "
                f"latent_dim {manifest.latent_dim}, which needs {_describe_shapes(wanted)}"
            )
        if any(t.dtype != "float32" for t in declared):
            raise BundleError(f"manifest {key} of {entry.path} must be float32 tensors")


def _describe(specs: tuple[TensorSpec, ...]) -> str:
    return _describe_shapes({t.name: t.shape for t in specs})


def _describe_shapes(shapes: Shapes) -> str:
    text = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
    return f"({text})" if text else "(none)"


def _model_file(data: Any) -> ModelFile:
    if not isinstance(data, dict):
        raise BundleError("each entry of manifest 'files' must be an object")
    path = _string(data, "path")
    if any(c in path for c in "/\\\0") or path in (".", ".."):
        raise BundleError(
            f"manifest file name {path[:MAX_NAME_CHARS]!r} must be a plain name inside the bundle"
        )
    file_format = one_of(data, "format", tuple(FORMATS))
    if not path.endswith(FORMATS[file_format]):
        raise BundleError(f"manifest file {path!r} does not end in {FORMATS[file_format]}")
    sha = _string(data, "sha256")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise BundleError(f"manifest sha256 of {path!r} is not 64 hex digits")
    return ModelFile(
        path=path,
        role=one_of(data, "role", (*ROLES, PRIOR)),
        format=file_format,
        precision=one_of(data, "precision", PRECISIONS),
        inputs=_tensors(data, "inputs"),
        outputs=_tensors(data, "outputs"),
        sha256=sha,
        size=bounded_int(data, "size", MAX_FILE_BYTES),
        default=boolean(data, "default", True),
        parity=mapping(data, "parity"),
        speed=mapping(data, "speed"),
        note=str(data.get("note", ""))[:MAX_NOTE_CHARS],
        batch_sizes=_batch_sizes(data.get("batch_sizes", [])),
        recommended=boolean(data, "recommended", False),
    )


def _tensors(data: dict[str, Any], key: str) -> tuple[TensorSpec, ...]:
    items = data.get(key)
    if not isinstance(items, list) or len(items) > MAX_TENSORS:
        raise BundleError(f"manifest field {key!r} must be a list of at most {MAX_TENSORS} tensors")
    specs = []
    for item in items:
        if not isinstance(item, dict):
            raise BundleError(f"manifest field {key!r} must list objects")
        shape = item.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_AXES or not all(is_dim(d) for d in shape):
            raise BundleError(f"manifest shape of tensor in {key!r} must list sizes or 'batch'")
        specs.append(TensorSpec(_string(item, "name"), tuple(shape), _string(item, "dtype")))
    return tuple(specs)


def _batch_sizes(value: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_BATCH_SIZE for v in value)
        or value != sorted(set(value))
    ):
        raise BundleError(f"manifest batch_sizes must be distinct ascending sizes 1-{MAX_BATCH_SIZE}")
    return tuple(value)


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TEMPERATURE:
        raise BundleError(f"manifest default_temperature must be a number in (0, {MAX_TEMPERATURE:g}]")
    return float(value)


def _omitted(value: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or len(value) > MAX_FILES:
        raise BundleError("manifest field 'omitted' must be a list")
    for item in value:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("file", "reason")):
            raise BundleError("each entry of manifest 'omitted' must have a 'file' and a 'reason'")
    return tuple({"file": item["file"], "reason": item["reason"]} for item in value)


def _string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise BundleError(f"manifest field {key!r} must be a string of 1-{MAX_NAME_CHARS} characters")
    return value


def _string_list(data: dict[str, Any], key: str, length: int) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or len(value) != length:
        raise BundleError(f"manifest field {key!r} must list {length} label names")
    if (
        not all(isinstance(v, str) and 0 < len(v) <= MAX_NAME_CHARS for v in value)
        or len(set(value)) != length
    ):
        raise BundleError(f"manifest field {key!r} must hold distinct names of 1-{MAX_NAME_CHARS} characters")
    return value
