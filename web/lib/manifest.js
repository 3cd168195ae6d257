/**
 * The bundle manifest's checks: vae_runtime/manifest.py's, rule for rule and message for message, with
 * the limits of the one bundle spec (lib/spec.js). Anything off raises a one-line BundleError naming
 * the field.
 */
import { BundleError, pyRepr } from "./errors.js";
import { SPEC } from "./spec.js";

/** @import { BundleFile, Manifest, TensorSpec } from "../vae-digits.js" */

const LIMITS = SPEC.manifest;
const ROLES = [...LIMITS.roles, LIMITS.prior_role];
const FORMATS = /** @type {Record<string, string>} */ (LIMITS.formats);

/**
 * Validate a parsed manifest.json: each field, the hard limits, and that the fields agree.
 * @param {unknown} data parsed JSON, checked here
 * @returns {Manifest}
 */
export function parseManifest(data) {
  if (!isObject(data)) throw new BundleError(`${LIMITS.file} must hold a JSON object`);
  if (data.format !== LIMITS.format) {
    throw new BundleError(`${LIMITS.file} is not a ${LIMITS.format} manifest`);
  }
  if (data.format_version !== LIMITS.format_version) {
    throw new BundleError(
      `bundle format version ${pyRepr(data.format_version)} is not supported (this runtime reads ` +
        `${LIMITS.format_version}); re-export the bundle or upgrade vae-digits`,
    );
  }
  const kind = oneOf(data, "kind", LIMITS.kinds);
  const latentDim = boundedInt(data, "latent_dim", LIMITS.max_latent_dim);
  const numClasses = kind === "cvae" ? boundedInt(data, "num_classes", LIMITS.max_classes) : 0;
  if (kind === "vae" && !isZero(field(data, "num_classes", 0))) {
    throw new BundleError("manifest field 'num_classes' must be 0 for a plain VAE");
  }
  const labels = stringList(data, "labels", numClasses);
  checkImageShape(data);
  const files = data.files;
  if (!Array.isArray(files) || files.length === 0 || files.length > LIMITS.max_files) {
    throw new BundleError(
      `${LIMITS.file} field 'files' must be a non-empty list of at most ${LIMITS.max_files} entries`,
    );
  }
  string(data, "run_id");
  const header = { kind, latent_dim: latentDim, num_classes: numClasses, labels };
  const entries = files.map(modelFile);
  const manifest = /** @type {Manifest} */ ({
    ...data,
    ...header,
    files: entries,
    default_temperature: temperature(field(data, "default_temperature", 1)),
  });
  omitted(field(data, "omitted", []));
  for (const key of ["training", "producer"]) mapping(data, key);
  checkConsistency(manifest);
  return manifest;
}

/**
 * The inputs and outputs {name: shape} that a file of `role` must have in this bundle.
 * @param {Manifest} manifest
 * @param {string} role
 * @returns {[Record<string, (string | number)[]>, Record<string, (string | number)[]>]}
 */
export function expectedTensors(manifest, role) {
  const image = ["batch", ...LIMITS.image_shape];
  const latent = ["batch", manifest.latent_dim];
  /** @type {Record<string, (string | number)[]>} */
  const label = manifest.kind === "cvae" ? { label: ["batch", manifest.num_classes] } : {};
  if (role === "decoder") return [{ z: latent, ...label }, { image }];
  if (role === "encoder") return [{ image, ...label }, { z_mean: latent, z_log_var: latent }];
  return [{}, {}];
}

/**
 * The file for a role in a format: of `precision`, or the default one when precision is null.
 * @param {Manifest} manifest
 * @param {BundleFile['role']} role
 * @param {BundleFile['format']} format
 * @param {string | null} precision
 * @returns {BundleFile | undefined}
 */
export function findFile(manifest, role, format, precision) {
  return manifest.files.find(
    (entry) =>
      entry.role === role &&
      entry.format === format &&
      (precision ? entry.precision === precision : entry.default),
  );
}

/**
 * @param {Manifest} manifest
 */
function checkConsistency(manifest) {
  const files = manifest.files;
  const paths = files.map((entry) => entry.path);
  const repeated = paths.filter((path, i) => paths.indexOf(path) !== i).sort();
  if (repeated.length > 0) throw new BundleError(`manifest lists ${pyRepr(repeated[0])} more than once`);
  const triples = files.map((e) => `${e.role} ${e.format} ${e.precision}`);
  const twice = triples.find((triple) => triples.filter((other) => other === triple).length > 1);
  if (twice) throw new BundleError(`manifest lists more than one ${twice} file`);
  for (const entry of files) checkEntry(manifest, entry);
  const groups = [...new Set(files.map((e) => `${e.role} ${e.format}`))].sort();
  for (const group of groups) {
    const defaults = files.filter((e) => `${e.role} ${e.format}` === group && e.default).length;
    const [role, format] = group.split(" ");
    if (defaults !== 1) {
      throw new BundleError(`manifest marks ${defaults} ${format} ${role} files default; exactly 1 must be`);
    }
  }
  const formats = [...new Set(files.map((e) => e.format))].filter((f) => f !== "json").sort();
  for (const format of formats) {
    const missing = LIMITS.roles.find((role) => !groups.includes(`${role} ${format}`));
    if (missing) throw new BundleError(`manifest has ${format} files but no ${format} ${missing}`);
  }
  for (const role of ROLES) {
    if (files.filter((e) => e.role === role && e.recommended).length > 1) {
      throw new BundleError(`manifest recommends more than one ${role} file`);
    }
  }
  if (files.filter((e) => e.role === LIMITS.prior_role).length > 1) {
    throw new BundleError("manifest lists more than one prior");
  }
}

/**
 * @param {Manifest} manifest
 * @param {BundleFile} entry
 */
function checkEntry(manifest, entry) {
  if ((entry.role === LIMITS.prior_role) !== (entry.format === "json")) {
    throw new BundleError(`manifest file ${pyRepr(entry.path)}: only the prior is a json file`);
  }
  if (entry.batch_sizes.length > 0 && entry.format !== "tflite") {
    throw new BundleError(`manifest file ${pyRepr(entry.path)}: batch_sizes are for tflite files only`);
  }
  const [inputs, outputs] = expectedTensors(manifest, entry.role);
  /** @type {["inputs" | "outputs", Record<string, (string | number)[]>][]} */
  const expected = [
    ["inputs", inputs],
    ["outputs", outputs],
  ];
  for (const [key, wanted] of expected) {
    const declared = entry[key];
    const names = declared.map((t) => t.name);
    const shapes = Object.fromEntries(declared.map((t) => [t.name, t.shape]));
    if (new Set(names).size !== names.length || !sameShapes(shapes, wanted)) {
      throw new BundleError(
        `manifest ${key} of ${entry.path} ${describe(shapes)} disagree with a ${manifest.kind} of ` +
          `latent_dim ${manifest.latent_dim}, which needs ${describe(wanted)}`,
      );
    }
    if (declared.some((t) => t.dtype !== "float32")) {
      throw new BundleError(`manifest ${key} of ${entry.path} must be float32 tensors`);
    }
  }
}

/**
 * @param {Record<string, (string | number)[]>} shapes
 * @param {Record<string, (string | number)[]>} wanted
 */
function sameShapes(shapes, wanted) {
  const names = Object.keys(wanted);
  return (
    Object.keys(shapes).length === names.length &&
    names.every((name) => JSON.stringify(shapes[name]) === JSON.stringify(wanted[name]))
  );
}

/** @param {Record<string, (string | number)[]>} shapes */
function describe(shapes) {
  const text = Object.entries(shapes)
    .map(([name, shape]) => `${name} ${pyRepr(shape)}`)
    .join(", ");
  return text ? `(${text})` : "(none)";
}

/**
 * @param {unknown} data
 * @returns {BundleFile}
 */
function modelFile(data) {
  if (!isObject(data)) throw new BundleError("each entry of manifest 'files' must be an object");
  const path = string(data, "path");
  if (/[/\\\0]/.test(path) || path === "." || path === "..") {
    throw new BundleError(
      `manifest file name ${pyRepr(codePoints(path).slice(0, LIMITS.max_name_chars).join(""))} ` +
        "must be a plain name inside the bundle",
    );
  }
  const format = oneOf(data, "format", Object.keys(FORMATS));
  if (!path.endsWith(FORMATS[format])) {
    throw new BundleError(`manifest file ${pyRepr(path)} does not end in ${FORMATS[format]}`);
  }
  const sha256 = string(data, "sha256");
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    throw new BundleError(`manifest sha256 of ${pyRepr(path)} is not 64 hex digits`);
  }
  return /** @type {BundleFile} */ ({
    ...data,
    path,
    role: oneOf(data, "role", ROLES),
    format,
    precision: oneOf(data, "precision", LIMITS.precisions),
    inputs: tensors(data, "inputs"),
    outputs: tensors(data, "outputs"),
    sha256,
    size: boundedInt(data, "size", LIMITS.max_file_bytes),
    default: boolean(data, "default", true),
    parity: mapping(data, "parity"),
    speed: mapping(data, "speed"),
    note: codePoints(String(field(data, "note", ""))).slice(0, LIMITS.max_note_chars).join(""),
    batch_sizes: batchSizes(field(data, "batch_sizes", [])),
    recommended: boolean(data, "recommended", false),
  });
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @returns {TensorSpec[]}
 */
function tensors(data, key) {
  const items = data[key];
  if (!Array.isArray(items) || items.length > LIMITS.max_tensors) {
    throw new BundleError(`manifest field ${pyRepr(key)} must be a list of at most ${LIMITS.max_tensors} tensors`);
  }
  return items.map((item) => {
    if (!isObject(item)) throw new BundleError(`manifest field ${pyRepr(key)} must list objects`);
    const shape = item.shape;
    if (!Array.isArray(shape) || shape.length > LIMITS.max_axes || !shape.every(isDim)) {
      throw new BundleError(`manifest shape of tensor in ${pyRepr(key)} must list sizes or 'batch'`);
    }
    return { name: string(item, "name"), shape, dtype: string(item, "dtype") };
  });
}

/** @param {unknown} value */
function isDim(value) {
  return value === "batch" || (Number.isInteger(value) && 0 < Number(value) && Number(value) <= LIMITS.max_axis_size);
}

/**
 * @param {unknown} value
 * @returns {number[]}
 */
function batchSizes(value) {
  const ok =
    Array.isArray(value) &&
    value.every((v, i) => Number.isInteger(v) && v > 0 && v <= LIMITS.max_batch_size && (i === 0 || v > value[i - 1]));
  if (!ok) throw new BundleError(`manifest batch_sizes must be distinct ascending sizes 1-${LIMITS.max_batch_size}`);
  return value;
}

/**
 * @param {unknown} value
 * @returns {number}
 */
function temperature(value) {
  if (typeof value !== "number" || !(value > 0 && value <= LIMITS.max_temperature)) {
    throw new BundleError(`manifest default_temperature must be a number in (0, ${LIMITS.max_temperature}]`);
  }
  return value;
}

/** @param {unknown} value */
function omitted(value) {
  if (!Array.isArray(value) || value.length > LIMITS.max_files) {
    throw new BundleError("manifest field 'omitted' must be a list");
  }
  for (const item of value) {
    if (!isObject(item) || typeof item.file !== "string" || typeof item.reason !== "string") {
      throw new BundleError("each entry of manifest 'omitted' must have a 'file' and a 'reason'");
    }
  }
}

/** @param {Record<string, unknown>} data */
function checkImageShape(data) {
  const shape = data.image_shape;
  if (!Array.isArray(shape) || shape.length !== 3) {
    throw new BundleError("manifest field 'image_shape' must list 3 positive integers");
  }
  for (const size of shape) boundedInt({ image_shape: size }, "image_shape", LIMITS.max_axis_size);
  if (JSON.stringify(shape) !== JSON.stringify(LIMITS.image_shape)) {
    throw new BundleError(`manifest image_shape ${pyRepr(shape)} is not ${pyRepr(LIMITS.image_shape)}`);
  }
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @param {number} length
 * @returns {string[]}
 */
function stringList(data, key, length) {
  const value = field(data, key, []);
  if (!Array.isArray(value) || value.length !== length) {
    throw new BundleError(`manifest field ${pyRepr(key)} must list ${length} label names`);
  }
  const names = value.filter((v) => typeof v === "string" && v.length > 0 && codePoints(v).length <= LIMITS.max_name_chars);
  if (names.length !== length || new Set(names).size !== length) {
    throw new BundleError(
      `manifest field ${pyRepr(key)} must hold distinct names of 1-${LIMITS.max_name_chars} characters`,
    );
  }
  return names;
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @param {boolean} fallback
 * @returns {boolean}
 */
function boolean(data, key, fallback) {
  const value = field(data, key, fallback);
  if (typeof value !== "boolean") throw new BundleError(`manifest field ${pyRepr(key)} must be true or false`);
  return value;
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @returns {string}
 */
function string(data, key) {
  const value = data[key];
  if (typeof value !== "string" || value.length === 0 || codePoints(value).length > LIMITS.max_name_chars) {
    throw new BundleError(
      `manifest field ${pyRepr(key)} must be a string of 1-${LIMITS.max_name_chars} characters`,
    );
  }
  return value;
}

/**
 * @template {string} T
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @param {readonly T[]} allowed
 * @returns {T}
 */
function oneOf(data, key, allowed) {
  const value = /** @type {T} */ (data[key]);
  if (typeof value !== "string" || !allowed.includes(value)) {
    throw new BundleError(
      `manifest field ${pyRepr(key)} is ${pyRepr(value)}; expected one of (${allowed.map(pyRepr).join(", ")})`,
    );
  }
  return value;
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @param {number} high
 * @returns {number}
 */
function boundedInt(data, key, high) {
  const value = data[key];
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > high) {
    throw new BundleError(`manifest field ${pyRepr(key)} must be an integer in 1-${high}`);
  }
  return value;
}

/**
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @returns {Record<string, unknown>}
 */
function mapping(data, key) {
  const value = field(data, key, {});
  if (!isObject(value)) throw new BundleError(`manifest field ${pyRepr(key)} must be an object`);
  if (!allFinite(value)) throw new BundleError(`manifest field ${pyRepr(key)} holds a non-finite number`);
  return value;
}

/** @param {unknown} value @returns {boolean} */
function allFinite(value) {
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(allFinite);
  if (isObject(value)) return Object.values(value).every(allFinite);
  return true;
}

/**
 * data[key], or `fallback` when the key is absent (as Python's dict.get: an explicit null stays null).
 * @param {Record<string, unknown>} data
 * @param {string} key
 * @param {unknown} fallback
 */
function field(data, key, fallback) {
  return Object.hasOwn(data, key) ? data[key] : fallback;
}

/** 0 as Python compares it: false == 0 there. @param {unknown} value */
function isZero(value) {
  return value === 0 || value === false;
}

/** @param {string} text @returns {string[]} characters as Python counts them */
function codePoints(text) {
  return Array.from(text);
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
export function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
