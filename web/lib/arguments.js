/** The checks of the arguments of `Generator`'s methods: vae_runtime's, with the bundle spec's limits. */
import { VaeDigitsError } from "./errors.js";
import { PIXELS } from "./digit.js";
import { SPEC } from "./spec.js";
import { MAX_STREAM_SEED } from "./stream.js";

/** @import { Label, LoadOptions } from "../vae-digits.js" */

/** Digits per call: fewer than vae_runtime's (the spec's max_digits), 31 MB of float32 pixels. */
export const MAX_DIGITS = SPEC.arguments.max_digits_browser;
const MAX_TEMPERATURE = SPEC.manifest.max_temperature;

/**
 * @param {unknown} values
 * @param {string} name
 * @param {number} width
 * @returns {{ data: Float32Array, rows: number }}
 */
export function asMatrix(values, name, width) {
  let data;
  if (Array.isArray(values) && values.length > 0 && Array.isArray(values[0])) {
    if (!values.every((row) => Array.isArray(row) && row.length === width)) {
      throw new VaeDigitsError(`${name} must have ${width} numbers in every row`);
    }
    data = Float32Array.from(values.flat());
  } else if (Array.isArray(values) || ArrayBuffer.isView(values)) {
    data = Float32Array.from(/** @type {ArrayLike<number>} */ (values));
  } else {
    throw new VaeDigitsError(`${name} must be an array of numbers, not ${typeof values}`);
  }
  if (data.length === 0 || data.length % width !== 0) {
    throw new VaeDigitsError(`${name} must hold N x ${width} numbers, not ${data.length}`);
  }
  if (!data.every(Number.isFinite)) {
    throw new VaeDigitsError(
      `${name} holds NaN, infinite or non-numeric values (or values beyond float32's range)`,
    );
  }
  if (data.length / width > MAX_DIGITS) throw new VaeDigitsError(`${name} has more than ${MAX_DIGITS} rows`);
  return { data, rows: data.length / width };
}

/**
 * @param {unknown} input
 * @returns {Float32Array}
 */
export function asImages(input) {
  if (!Array.isArray(input) && !ArrayBuffer.isView(input)) {
    throw new VaeDigitsError(`images must be an array of pixels, not ${typeof input}`);
  }
  const values = /** @type {ArrayLike<number>} */ (input);
  if (values.length === 0 || values.length % PIXELS !== 0) {
    throw new VaeDigitsError(`images must hold N x 784 pixels (28 x 28 each), not ${values.length}`);
  }
  if (values.length / PIXELS > MAX_DIGITS)
    throw new VaeDigitsError(`images has more than ${MAX_DIGITS} rows`);
  if (values instanceof Uint8Array || values instanceof Uint8ClampedArray) {
    return Float32Array.from(values, (value) => value / 255);
  }
  const pixels = Float32Array.from(values);
  if (!pixels.every((value) => value >= 0 && value <= 1)) {
    throw new VaeDigitsError("float images must be finite and within [0, 1] (or pass a Uint8Array of 0-255)");
  }
  return pixels;
}

/**
 * @param {Int32Array} labelIds
 * @param {number} classes
 * @returns {Float32Array}
 */
export function oneHot(labelIds, classes) {
  const rows = new Float32Array(labelIds.length * classes);
  labelIds.forEach((id, row) => (rows[row * classes + id] = 1));
  return rows;
}

/**
 * @param {number} value
 * @param {string} name
 * @returns {number}
 */
export function positiveInt(value, name) {
  if (!Number.isInteger(value) || value <= 0)
    throw new VaeDigitsError(`${name} must be a positive integer, not ${value}`);
  return value;
}

/**
 * @param {number} value
 * @returns {number}
 */
export function checkTemperature(value) {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new VaeDigitsError(`temperature must be a finite number > 0, not ${value}`);
  }
  if (value > MAX_TEMPERATURE)
    throw new VaeDigitsError(`temperature ${value} is above the limit of ${MAX_TEMPERATURE}`);
  return value;
}

/**
 * A seed of the portable stream: 0 .. 2^64 - 1, as a safe integer or a bigint; null draws a fresh one.
 * @param {number | bigint | null | undefined} value
 * @returns {number | bigint}
 */
export function checkSeed(value) {
  if (value === null || value === undefined) {
    const [low, high] = crypto.getRandomValues(new Uint32Array(2));
    return (BigInt(high) << 32n) | BigInt(low);
  }
  const valid = typeof value === "bigint" ? value >= 0n && value <= MAX_STREAM_SEED : Number.isSafeInteger(value) && value >= 0;
  if (!valid) throw new VaeDigitsError(`seed must be an integer in 0-${MAX_STREAM_SEED} or null, not ${value}`);
  return value;
}

/**
 * @param {Label} item
 * @param {string[]} names
 * @returns {number}
 */
export function labelId(item, names) {
  if (typeof item === "string") {
    const index = names.indexOf(item);
    if (index < 0)
      throw new VaeDigitsError(`unknown label "${item}"; this bundle's labels are ${names.join(", ")}`);
    return index;
  }
  if (!Number.isInteger(item))
    throw new VaeDigitsError(`label ${String(item)} is not an integer or a label name`);
  if (item < 0 || item >= names.length) {
    throw new VaeDigitsError(`label ${item} is out of range: this bundle has labels 0-${names.length - 1}`);
  }
  return item;
}

/**
 * @param {unknown} options
 * @returns {LoadOptions}
 */
export function loadOptions(options) {
  if (options === null || options === undefined) return {};
  if (typeof options !== "object" || Array.isArray(options)) {
    throw new VaeDigitsError(`options must be an object such as { threads: 2 }, not ${typeof options}`);
  }
  const { precision = null } = /** @type {LoadOptions} */ (options);
  if (precision !== null && typeof precision !== "string") {
    throw new VaeDigitsError(`precision must be a string such as "int8" or null, not ${typeof precision}`);
  }
  return /** @type {LoadOptions} */ (options);
}
