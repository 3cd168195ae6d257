/**
 * A bundle's fitted latent prior (prior.json): vae_runtime/prior.py's checks, with the limits of the
 * bundle spec (lib/spec.js), and its sampling rule.
 */
import { BundleError } from "./errors.js";
import { isObject } from "./manifest.js";
import { SPEC } from "./spec.js";

/** @import { Manifest } from "../vae-digits.js" */

const LIMITS = SPEC.prior;

/**
 * Validate prior.json for this bundle and return a sampler.
 * @param {unknown} data parsed JSON, checked here
 * @param {Manifest} manifest
 * @param {string} [name]
 * @returns {Prior}
 */
export function parsePrior(data, manifest, name = "prior") {
  const bad = (/** @type {string} */ what) => new BundleError(`${name}: ${what}`);
  const d = manifest.latent_dim;
  if (!isObject(data) || data.format !== LIMITS.format || data.format_version !== LIMITS.format_version) {
    throw bad(`not a ${LIMITS.format} version ${LIMITS.format_version} file`);
  }
  if (data.kind !== LIMITS.kind || data.latent_dim !== d) {
    throw bad(`must be a kind '${LIMITS.kind}' prior of latent_dim ${d}, as the bundle`);
  }
  if (JSON.stringify(data.labels) !== JSON.stringify(manifest.labels)) {
    throw bad("its labels differ from the bundle's");
  }
  const expected = Math.max(manifest.labels.length, 1);
  /** @type {unknown[]} */
  const mixtures = data.mixtures;
  if (!Array.isArray(mixtures) || mixtures.length !== expected) {
    throw bad(`must hold ${expected} mixtures, one per label`);
  }
  const sizes = new Set(mixtures.map((m) => (isObject(m) && Array.isArray(m.weights) ? m.weights.length : 0)));
  const [components] = sizes;
  if (sizes.size !== 1 || !(components > 0 && components <= LIMITS.max_components)) {
    throw bad(`every mixture must have the same number of components, 1-${LIMITS.max_components}`);
  }
  if (mixtures.length * components * d ** 2 > LIMITS.max_numbers) throw bad("is too large");
  return new Prior(
    mixtures.map((mixture) => parseMixture(/** @type {Record<string, unknown>} */ (mixture), components, d, bad)),
    d,
  );
}

/**
 * @param {Record<string, unknown>} mixture parsed JSON, checked here
 * @param {number} components
 * @param {number} d
 * @param {(what: string) => BundleError} bad
 * @returns {Mixture}
 */
function parseMixture(mixture, components, d, bad) {
  const weights = numbers(mixture.weights, [components], bad);
  const means = numbers(mixture.means, [components, d], bad);
  const cholesky = numbers(mixture.cholesky, [components, d, d], bad);
  const total = weights.reduce((sum, w) => sum + w, 0);
  if (weights.some((w) => w < 0) || Math.abs(total - 1) > LIMITS.weights_tolerance) {
    throw bad("mixture weights must be >= 0 and sum to 1");
  }
  for (let k = 0; k < components; k++) {
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const value = cholesky[(k * d + i) * d + j];
        if (j === i ? !(value > 0) : value !== 0) {
          throw bad("cholesky factors must be lower-triangular with a positive diagonal");
        }
      }
    }
  }
  let cumulative = 0;
  return { cumulative: weights.map((w) => (cumulative += w)), means, cholesky };
}

/**
 * A nested array of the given shape as a flat Float64Array of finite numbers, refused with numpy's
 * distinction: what is no regular array of numbers (ragged, text) against the wrong shape or non-finite.
 * @param {unknown} value
 * @param {number[]} shape
 * @param {(what: string) => BundleError} bad
 * @returns {Float64Array}
 */
function numbers(value, shape, bad) {
  const found = arrayShape(value);
  if (found === null) throw bad(`expected numbers of shape [${shape.join(", ")}]`);
  const flat = Float64Array.from(/** @type {unknown[]} */ ([value]).flat(Infinity), (v) =>
    v === null ? NaN : Number(v),
  );
  if (found.join() !== shape.join() || !flat.every(Number.isFinite)) {
    throw bad(`expected finite numbers of shape [${shape.join(", ")}]`);
  }
  return flat;
}

/**
 * The shape numpy gives `value` as an array of floats; null where numpy refuses (ragged, text).
 * null and booleans are numbers to numpy (NaN, 0 and 1).
 * @param {unknown} value
 * @returns {number[] | null}
 */
function arrayShape(value) {
  if (typeof value === "number" || typeof value === "boolean" || value === null) return [];
  if (!Array.isArray(value)) return null;
  const shapes = value.map(arrayShape);
  const first = shapes[0] ?? [];
  if (shapes.some((s) => s === null || s.join() !== first.join() || s.length !== first.length)) return null;
  return [value.length, ...first];
}

/** @typedef {{ cumulative: Float64Array, means: Float64Array, cholesky: Float64Array }} Mixture */

/** A Gaussian mixture per label (one for a plain VAE), sampled by vae_runtime.prior.Prior.sample's rule. */
export class Prior {
  /**
   * @param {Mixture[]} mixtures
   * @param {number} latentDim
   */
  constructor(mixtures, latentDim) {
    this.mixtures = mixtures; // one per label (one for a VAE): cumulative weights, means, cholesky (flat)
    this.latentDim = latentDim;
  }

  /** z for each row: component k of its label's mixture, k = #{j : cumulative[j] <= u} (capped),
   * then means[k] + temperature * cholesky[k] @ eps: the rule of vae_runtime.prior.Prior.sample.
   * @param {Int32Array | null} labelIds
   * @param {Float64Array} eps
   * @param {Float64Array} uniforms
   * @param {number} temperature
   * @returns {Float32Array}
   */
  sample(labelIds, eps, uniforms, temperature) {
    const d = this.latentDim;
    const z = new Float32Array(eps.length);
    for (let row = 0; row < uniforms.length; row++) {
      const { cumulative, means, cholesky } = this.mixtures[labelIds ? labelIds[row] : 0];
      const below = cumulative.filter((c) => c <= uniforms[row]).length;
      const k = Math.min(below, cumulative.length - 1);
      for (let i = 0; i < d; i++) {
        let offset = 0;
        for (let j = 0; j <= i; j++) offset += cholesky[(k * d + i) * d + j] * eps[row * d + j];
        z[row * d + i] = means[k * d + i] + temperature * offset;
      }
    }
    return z;
  }
}
