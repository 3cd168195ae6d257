/**
 * vae-digits in the browser: the twin of `vae_runtime.Generator` on onnxruntime-web.
 *
 * Loads a bundle that `vae-export` wrote (manifest.json, decoder.onnx, encoder.onnx, prior.json when
 * present) over HTTP, checks every downloaded file's size and sha256 against the manifest and each
 * model's input/output names and shapes against the manifest's declared ones, then decodes, encodes and
 * generates digits on the user's CPU. Bad input raises a VaeDigitsError (a BundleError for the bundle)
 * whose message is one line saying what is wrong. The .tflite files of a bundle are never downloaded.
 *
 * The checks and their limits are vae_runtime's: lib/spec.js is generated from its bundle_spec.json,
 * and lib/manifest.js and lib/prior.js apply the rules of manifest.py and prior.py, message for message.
 *
 * Example:
 *   import { Generator } from "./vae-digits.js";
 *   const g = await Generator.load("bundles/cvae/");
 *   const sevens = await g.generate(7, { count: 16, seed: 0 });  // Uint8Array, 16 x 28 x 28, 0 = black
 *
 * "onnxruntime-web/wasm" (onnxruntime-web's WebAssembly-only build) is a bare module name: map it with
 * an import map (the demo page maps it to ort.wasm.bundle.min.mjs) or let a bundler resolve it; either
 * way ort-wasm-simd-threaded.wasm must be served next to that module or named by ort.env.wasm.wasmPaths.
 */
import { BundleError, VaeDigitsError, errorName, firstLine } from "./lib/errors.js";
import { PIXELS, toGreyLevels } from "./lib/digit.js";
import {
  MAX_DIGITS,
  asImages,
  asMatrix,
  checkSeed,
  checkTemperature,
  labelId,
  loadOptions,
  oneHot,
  positiveInt,
} from "./lib/arguments.js";
import { directoryUrl, fetchManifest, fetchVerified, parseJson } from "./lib/download.js";
import { findFile, parseManifest } from "./lib/manifest.js";
import { openModel, runtimeVersion, startRuntime, threadsInUse } from "./lib/onnx.js";
import { parsePrior } from "./lib/prior.js";
import { draws } from "./lib/stream.js";
import { SPEC } from "./lib/spec.js";

/** @import { Feed, Model } from "./lib/onnx.js" */
/** @import { Prior } from "./lib/prior.js" */

export { BundleError, VaeDigitsError } from "./lib/errors.js";
export { PIXELS, mnistLike, readDigit, toGreyLevels } from "./lib/digit.js";

const CHUNK = 512; // most rows per model call: bounds the WebAssembly heap
const MAX_PRIOR_BYTES = SPEC.prior.max_bytes;

/**
 * A loaded bundle: its manifest, an onnxruntime-web decoder and (opened on first use) encoder.
 *
 * Example:
 *   const g = await Generator.load("bundles/cvae/", { threads: 2 });
 *   const images = await g.decode([[0, 0], [1, -1]], 3);  // Float32Array, 2 x 28 x 28 in [0, 1]
 */
export class Generator {
  /**
   * Use `Generator.load`: it checks the bundle and builds this.
   * @param {{ info: Manifest, url: URL, decoder: Model, encoderModel: [BundleFile, Uint8Array],
   *   prior: Prior | null, files: Record<string, BundleFile> }} parts
   */
  constructor({ info, url, decoder, encoderModel, prior, files }) {
    this.info = info; // the manifest, as parsed from manifest.json
    this.url = url; // the bundle's base URL
    this.prior = prior; // the fitted latent prior, or null: N(0, I)
    this.files = files; // role -> the manifest entry of the file in use
    this.decoder = decoder;
    this.encoderModel = encoderModel; // verified bytes; the session opens on the first encode()
    /** @type {Promise<Model> | null} */
    this.encoder = null;
  }

  /**
   * Download and check a bundle, open its decoder.
   *
   * bundleUrl: the bundle's directory URL (relative to the page or absolute).
   * options.threads: WebAssembly threads (0: one per core when the page is cross-origin isolated,
   *   else 1). The first load of the page decides: onnxruntime-web starts once.
   * options.precision: a decoder/encoder precision the bundle ships as ONNX ("int8"), else the default.
   *
   * Example:
   *   const g = await Generator.load("bundles/vae/");
   *
   * @param {string | URL} bundleUrl
   * @param {LoadOptions} [options]
   * @returns {Promise<Generator>} rejects with a BundleError (a VaeDigitsError for bad arguments)
   */
  static async load(bundleUrl, options = {}) {
    try {
      return await Generator.#load(bundleUrl, options);
    } catch (error) {
      if (error instanceof VaeDigitsError) throw error;
      // a failure no check foresaw (the browser's, onnxruntime-web's): still one line, still a BundleError
      const where = String(bundleUrl).slice(0, 200);
      throw new BundleError(
        `the bundle at ${where} cannot be loaded (${errorName(error)}: ${firstLine(error)})`,
      );
    }
  }

  /**
   * @param {string | URL} bundleUrl
   * @param {LoadOptions | null} options
   * @returns {Promise<Generator>}
   */
  static async #load(bundleUrl, options) {
    const { threads = 0, precision = null } = loadOptions(options);
    startRuntime(threads);
    const url = directoryUrl(bundleUrl);
    const info = parseManifest(await fetchManifest(url));
    const decoderEntry = modelEntry(info, "decoder", precision);
    const encoderEntry = findFile(info, "encoder", "onnx", precision) ?? modelEntry(info, "encoder", null);
    const priorEntry = info.files.find((entry) => entry.role === "prior") ?? null;
    if (priorEntry && priorEntry.size > MAX_PRIOR_BYTES) {
      throw new BundleError(`${priorEntry.path} is larger than ${MAX_PRIOR_BYTES} bytes`);
    }
    const [decoderBytes, encoderBytes, priorBytes] = await Promise.all([
      fetchVerified(url, decoderEntry),
      fetchVerified(url, encoderEntry),
      priorEntry && fetchVerified(url, priorEntry),
    ]);
    const prior =
      priorEntry && priorBytes
        ? parsePrior(parseJson(priorBytes, priorEntry.path), info, priorEntry.path)
        : null;
    const decoder = await openModel(decoderEntry, decoderBytes);
    const files = { decoder: decoderEntry, encoder: encoderEntry, ...(priorEntry && { prior: priorEntry }) };
    return new Generator({ info, url, decoder, encoderModel: [encoderEntry, encoderBytes], prior, files });
  }

  /** Whether the bundle is a CVAE (it takes labels). @returns {boolean} */
  get conditional() {
    return this.info.kind === "cvae";
  }

  /** @returns {number} the size of z */
  get latentDim() {
    return this.info.latent_dim;
  }

  /** @returns {string[]} the label names ([] for a plain VAE) */
  get labels() {
    return this.info.labels;
  }

  /**
   * The WebAssembly threads onnxruntime-web runs on (1 unless the page is cross-origin isolated).
   * @returns {number}
   */
  static get threads() {
    return threadsInUse();
  }

  /** The version of onnxruntime-web in use. @returns {string} */
  static get runtimeVersion() {
    return runtimeVersion();
  }

  /**
   * Latents -> float32 images in [0, 1], row-major (N x 28 x 28).
   *
   * z: a flat array of N * latent_dim numbers, or N arrays of latent_dim numbers.
   * labels: for a CVAE one label (an index or a label name) for every row or one per row; null for a VAE.
   *
   * Example:
   *   const images = await g.decode(new Float32Array([0.5, -1]), "7");
   *
   * @param {Latents} z
   * @param {Labels} [labels]
   * @returns {Promise<Float32Array>}
   */
  async decode(z, labels = null) {
    const latents = asMatrix(z, "z", this.latentDim);
    return this.#decode(latents, this.#labelsFor(labels, latents.rows));
  }

  /**
   * Images -> { zMean, zLogVar }, each a Float32Array of N * latent_dim.
   *
   * images: N * 784 pixels, row-major: a Uint8Array / Uint8ClampedArray (0-255) or numbers in [0, 1].
   *
   * Example:
   *   const { zMean } = await g.encode(pixels28x28, 4);
   *
   * @param {ArrayLike<number>} images
   * @param {Labels} [labels]
   * @returns {Promise<Encoded>}
   */
  async encode(images, labels = null) {
    const pixels = asImages(images);
    const rows = pixels.length / PIXELS;
    const labelIds = this.#labelsFor(labels, rows);
    const encoder = await this.#openEncoder();
    /** @type {Feed[]} */
    const feeds = [["image", pixels, [rows, 28, 28, 1]]];
    if (labelIds)
      feeds.push(["label", oneHot(labelIds, this.info.num_classes), [rows, this.info.num_classes]]);
    const outputs = await encoder.run(feeds, ["z_mean", "z_log_var"]);
    return { zMean: outputs.z_mean, zLogVar: outputs.z_log_var };
  }

  /**
   * Sample digits: a Uint8Array of N x 28 x 28 grey levels, 0 = black.
   *
   * labels: for a CVAE a label, a label name or an array of them (null: every label), each drawn
   *   `count` times, label by label; null for a plain VAE (`count` digits).
   * seed: an integer in 0 .. 2^64 - 1 (a safe integer or a bigint): the same seed gives the same
   *   digits on every load, and the same latents as vae_runtime, vae-serve and the C library
   *   (the portable stream of docs/stream.md).
   * temperature: the spread of z (null: the bundle's default_temperature).
   *
   * Example:
   *   const digits = await g.generate(null, { count: 4, seed: 1 });  // 4 of each label
   *
   * @param {Labels} [labels]
   * @param {SampleOptions} [options]
   * @returns {Promise<Uint8Array>}
   */
  async generate(labels = null, { count = 1, seed = null, temperature = null } = {}) {
    const { z, labelIds } = this.sample(labels, { count, seed, temperature });
    return toGreyLevels(await this.#decode({ data: z, rows: z.length / this.latentDim }, labelIds));
  }

  /**
   * The latents `generate` decodes: { z: Float32Array(N * latent_dim), labelIds: Int32Array | null }.
   * z comes from the bundle's prior (a Gaussian mixture per label) when it has one, else N(0, I), drawn
   * from the portable seeded stream (docs/stream.md): the same latents as vae_runtime for the same seed.
   *
   * @param {Labels} [labels]
   * @param {SampleOptions} [options]
   * @returns {Sample}
   */
  sample(labels = null, { count = 1, seed = null, temperature = null } = {}) {
    const copies = positiveInt(count, "count");
    const spread = checkTemperature(temperature ?? this.info.default_temperature ?? 1);
    const ids = this.#labelIds(labels, true);
    const total = copies * (ids ? ids.length : 1);
    if (total > MAX_DIGITS)
      throw new VaeDigitsError(`${total} digits asked for; at most ${MAX_DIGITS} per call`);
    const labelIds = ids && Int32Array.from({ length: total }, (_, i) => ids[Math.floor(i / copies)]);
    const { choosers, normals } = draws(checkSeed(seed), total, this.latentDim); // docs/stream.md
    const z = this.prior
      ? this.prior.sample(labelIds, normals, choosers, spread)
      : Float32Array.from(normals, (value) => value * spread);
    return { z, labelIds };
  }

  /**
   * @param {{ data: Float32Array, rows: number }} latents
   * @param {Int32Array | null} labelIds
   * @returns {Promise<Float32Array>}
   */
  async #decode(latents, labelIds) {
    const { data, rows } = latents;
    const d = this.latentDim;
    const images = new Float32Array(rows * PIXELS);
    for (let start = 0; start < rows; start += CHUNK) {
      const size = Math.min(CHUNK, rows - start);
      /** @type {Feed[]} */
      const feeds = [["z", data.subarray(start * d, (start + size) * d), [size, d]]];
      if (labelIds) {
        const ids = labelIds.subarray(start, start + size);
        feeds.push(["label", oneHot(ids, this.info.num_classes), [size, this.info.num_classes]]);
      }
      const { image } = await this.decoder.run(feeds, ["image"]);
      images.set(image, start * PIXELS);
    }
    return images;
  }

  #openEncoder() {
    this.encoder ??= openModel(...this.encoderModel);
    return this.encoder;
  }

  /**
   * @param {Labels | undefined} labels
   * @param {number} rows
   * @returns {Int32Array | null}
   */
  #labelsFor(labels, rows) {
    const ids = this.#labelIds(labels, false);
    if (ids === null || ids.length === rows) return ids;
    if (ids.length === 1) return new Int32Array(rows).fill(ids[0]);
    throw new VaeDigitsError(`labels has ${ids.length} entries for ${rows} rows; give 1 or ${rows}`);
  }

  /**
   * @param {Labels | undefined} labels
   * @param {boolean} everyByDefault
   * @returns {Int32Array | null}
   */
  #labelIds(labels, everyByDefault) {
    const names = this.info.labels;
    if (!this.conditional) {
      if (labels !== null && labels !== undefined) {
        throw new VaeDigitsError("this bundle is a plain VAE: it takes no labels (use null)");
      }
      return null;
    }
    if (labels === null || labels === undefined) {
      if (everyByDefault) return Int32Array.from(names.keys());
      throw new VaeDigitsError(`this bundle is a CVAE: give labels (0-${names.length - 1} or label names)`);
    }
    const items = typeof labels === "string" || typeof labels === "number" ? [labels] : Array.from(labels);
    if (items.length === 0) throw new VaeDigitsError("labels is empty; give at least one label");
    if (items.length > MAX_DIGITS)
      throw new VaeDigitsError(`${items.length} labels given; at most ${MAX_DIGITS}`);
    return Int32Array.from(items, (item) => labelId(item, names));
  }
}

/**
 * @param {Manifest} info
 * @param {BundleFile['role']} role
 * @param {string | null} precision
 * @returns {BundleFile}
 */
function modelEntry(info, role, precision) {
  const entry = findFile(info, role, "onnx", precision);
  if (!entry) {
    const which = precision ? `of precision ${precision}` : "marked default";
    throw new BundleError(
      `the bundle has no ONNX ${role} ${which}: ` +
        "the browser runs ONNX files (export with vae-export onnx or all)",
    );
  }
  return entry;
}

// ---- the types of the public API (for TypeScript users: the package's .d.ts) ----
/**
 * A label: its index (0 to num_classes - 1) or its name in the manifest's `labels`.
 * @typedef {number | string} Label
 */
/**
 * Labels for a call: one label, several, or null (a plain VAE; for `generate` on a CVAE: every label).
 * @typedef {Label | Iterable<Label> | null} Labels
 */
/**
 * Latents: N * latent_dim numbers in one flat array, or N arrays of latent_dim numbers.
 * @typedef {ArrayLike<number> | ReadonlyArray<ReadonlyArray<number>>} Latents
 */
/**
 * A model tensor as the manifest declares it.
 * @typedef {{ name: string, shape: (number | string)[], dtype: string }} TensorSpec
 */
/**
 * One entry of the manifest's `files`, checked.
 * @typedef {object} BundleFile
 * @property {string} path the file's name inside the bundle
 * @property {"encoder" | "decoder" | "prior"} role
 * @property {"onnx" | "tflite" | "json"} format
 * @property {string} precision "fp32", "fp16", "dynamic" or "int8"
 * @property {string} sha256 64 hex digits
 * @property {number} size bytes
 * @property {boolean} default whether it is the default file of its role and format
 * @property {TensorSpec[]} inputs
 * @property {TensorSpec[]} outputs
 * @property {number[]} batch_sizes the static batch sizes of a TFLite file ([]: a dynamic batch)
 * @property {boolean} recommended whether it is the file to pick on an edge device
 */
/**
 * The bundle's manifest.json after the checks `load` makes; fields this library does not read are
 * kept as they are (training epochs, losses, run id...).
 * @typedef {object} ManifestFields
 * @property {"vae-digits-bundle"} format
 * @property {1} format_version
 * @property {"vae" | "cvae"} kind
 * @property {number} latent_dim
 * @property {number} num_classes 0 for a plain VAE
 * @property {string[]} labels the label names, [] for a plain VAE
 * @property {number[]} image_shape [28, 28, 1]
 * @property {number} default_temperature
 * @property {BundleFile[]} files
 */
/** @typedef {ManifestFields & Record<string, unknown>} Manifest */
/**
 * Options of `Generator.load`.
 * @typedef {object} LoadOptions
 * @property {number} [threads] WebAssembly threads, 0-64 (0, the default: one per core when the page
 *   is cross-origin isolated, else 1). The first load of the page decides: onnxruntime-web starts once.
 * @property {string | null} [precision] a precision the bundle ships as ONNX ("int8"); null: the default
 */
/**
 * Options of `generate` and `sample`.
 * @typedef {object} SampleOptions
 * @property {number} [count] digits per label (per call for a plain VAE), default 1
 * @property {number | bigint | null} [seed] 0 .. 2^64 - 1 (docs/stream.md); null draws a fresh seed
 * @property {number | null} [temperature] the spread of z, in (0, 10]; null: the bundle's default
 */
/**
 * What `sample` returns: the latents `generate` decodes and the label of each row.
 * @typedef {{ z: Float32Array, labelIds: Int32Array | null }} Sample
 */
/**
 * What `encode` returns: each N * latent_dim numbers.
 * @typedef {{ zMean: Float32Array, zLogVar: Float32Array }} Encoded
 */
