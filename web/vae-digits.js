/**
 * vae-digits in the browser: the twin of `vae_runtime.Generator` on onnxruntime-web.
 *
 * Loads a bundle that `vae-export` wrote (manifest.json, decoder.onnx, encoder.onnx, prior.json when
 * present) over HTTP, checks every downloaded file's size and sha256 against the manifest and each
 * model's input/output names and shapes against the manifest's declared ones, then decodes, encodes and
 * generates digits on the user's CPU. Bad input raises a VaeDigitsError (a BundleError for the bundle)
 * whose message is one line saying what is wrong. The .tflite files of a bundle are never downloaded.
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
import * as ort from "onnxruntime-web/wasm";

/** Pixels in one digit: 28 x 28. */
export const PIXELS = 28 * 28;
const MANIFEST = "manifest.json";
const BUNDLE_FORMAT = "vae-digits-bundle";
const PRIOR_FORMAT = "vae-digits-prior";
// The limits of vae_runtime (manifest.py, prior.py), checked before anything is sized from a file.
const MAX_MANIFEST_BYTES = 1 << 20;
const MAX_LATENT_DIM = 256;
const MAX_CLASSES = 256;
const MAX_FILES = 64;
const MAX_FILE_BYTES = 256 << 20;
const MAX_PRIOR_BYTES = 8 << 20;
const MAX_COMPONENTS = 64;
const MAX_TEMPERATURE = 10;
const MAX_DIGITS = 10_000; // per call: 31 MB of float32 pixels
const CHUNK = 512; // most rows per model call: bounds the WebAssembly heap

/** Bad input: an argument, a file or a bundle. The message is one line that says what to do. */
export class VaeDigitsError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "VaeDigitsError"; // spelled out: a minifier renames classes
  }
}

/** A bundle that is missing, malformed, tampered with or not loadable. */
export class BundleError extends VaeDigitsError {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "BundleError";
  }
}

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
    return globalThis.crossOriginIsolated ? (ort.env.wasm.numThreads ?? 1) : 1;
  }

  /** The version of onnxruntime-web in use. @returns {string} */
  static get runtimeVersion() {
    return ort.env.versions?.web ?? "?";
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
   * seed: a non-negative integer: the same seed gives the same digits on every load (the stream is
   *   this library's, xoshiro128**, not numpy's: a seed draws other digits than in Python).
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
   * z comes from the bundle's prior (a Gaussian mixture per label) when it has one, else N(0, I).
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
    const random = new Random(checkSeed(seed));
    const eps = random.normals(total * this.latentDim); // first the noise, then the components: as Python
    const z = this.prior
      ? this.prior.sample(labelIds, eps, random.uniforms(total), spread)
      : eps.map((value) => value * spread);
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
 * @param {Label} item
 * @param {string[]} names
 * @returns {number}
 */
function labelId(item, names) {
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
 * Float images in [0, 1] -> grey levels 0-255, rounded as numpy's rint(images * 255) in float32.
 * @param {ArrayLike<number>} images
 * @returns {Uint8Array}
 */
export function toGreyLevels(images) {
  const levels = new Uint8Array(images.length);
  for (let i = 0; i < images.length; i++) {
    const scaled = Math.fround(images[i] * 255);
    let rounded = Math.round(scaled);
    if (rounded - scaled === 0.5 && rounded % 2 === 1) rounded -= 1; // ties to even, as numpy
    levels[i] = rounded;
  }
  return levels;
}

/**
 * Grey pixels of any size (white ink on black) -> 28 x 28 grey levels laid out like MNIST, as
 * `vae-explore restyle` prepares a digit: cropped to the ink (pixels above a fifth of the brightest),
 * scaled to fit 20 x 20 (area average) and centred. Returns null for a blank image.
 *
 * Example:
 *   const digit = mnistLike(grey, 280, 280);  // Uint8Array(784) or null
 *
 * @param {ArrayLike<number> & Iterable<number>} grey width * height grey levels, row-major
 * @param {number} width
 * @param {number} height
 * @returns {Uint8Array | null}
 */
export function mnistLike(grey, width, height) {
  let brightest = 0;
  for (const value of grey) brightest = Math.max(brightest, value);
  if (brightest === 0) return null;
  const box = inkBox(grey, width, height, 0.2 * brightest);
  const scale = 20 / Math.max(box.width, box.height);
  const outWidth = Math.max(1, Math.round(box.width * scale));
  const outHeight = Math.max(1, Math.round(box.height * scale));
  const small = resizeArea(grey, width, box, outWidth, outHeight);
  const canvas = new Uint8Array(PIXELS);
  const top = Math.floor((28 - outHeight) / 2);
  const left = Math.floor((28 - outWidth) / 2);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++)
      canvas[(top + y) * 28 + left + x] = Math.round(small[y * outWidth + x]);
  }
  return canvas;
}

/**
 * @param {ArrayLike<number>} grey
 * @param {number} width
 * @param {number} height
 * @param {number} threshold
 * @returns {Box}
 */
function inkBox(grey, width, height, threshold) {
  let [top, left, bottom, right] = [height, width, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (grey[y * width + x] > threshold) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  return { top, left, width: right - left + 1, height: bottom - top + 1 };
}

/**
 * The `box` of `grey` (row stride `stride`) averaged down to outWidth x outHeight: each output pixel
 * is the mean of the source area it covers, partial pixels weighted by their covered share.
 * @param {ArrayLike<number>} grey
 * @param {number} stride
 * @param {Box} box
 * @param {number} outWidth
 * @param {number} outHeight
 * @returns {Float64Array}
 */
function resizeArea(grey, stride, box, outWidth, outHeight) {
  const rowWeights = areaWeights(box.height, outHeight);
  const columnWeights = areaWeights(box.width, outWidth);
  const out = new Float64Array(outWidth * outHeight);
  for (const [sy, oy, wy] of rowWeights) {
    for (const [sx, ox, wx] of columnWeights) {
      out[oy * outWidth + ox] += wy * wx * grey[(box.top + sy) * stride + box.left + sx];
    }
  }
  return out;
}

/**
 * [source index, output index, weight] triples: each output cell averages the sources it covers.
 * @param {number} sourceSize
 * @param {number} outSize
 * @returns {[number, number, number][]}
 */
function areaWeights(sourceSize, outSize) {
  const ratio = sourceSize / outSize;
  /** @type {[number, number, number][]} */
  const weights = [];
  for (let o = 0; o < outSize; o++) {
    const [start, end] = [o * ratio, (o + 1) * ratio];
    for (let s = Math.floor(start); s < Math.min(Math.ceil(end), sourceSize); s++) {
      const covered = Math.min(end, s + 1) - Math.max(start, s);
      if (covered > 0) weights.push([s, o, covered / ratio]);
    }
  }
  return weights;
}

/** @typedef {{ top: number, left: number, width: number, height: number }} Box  pixels */

// ---- onnxruntime-web ----

/** @type {number | null} */
let runtimeThreads = null;

/**
 * @param {number} threads
 */
function startRuntime(threads) {
  if (!Number.isInteger(threads) || threads < 0 || threads > 64) {
    throw new VaeDigitsError(`threads must be an integer in 0-64 (0: one per core), not ${threads}`);
  }
  if (runtimeThreads !== null) return; // onnxruntime-web starts once per page
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  // Without cross-origin isolation there is no SharedArrayBuffer: onnxruntime-web would fall back to
  // one thread anyway. Its own default is half the cores, which is one thread on a 2-core machine.
  const chosen = globalThis.crossOriginIsolated ? threads || Math.min(cores, 16) : 1;
  runtimeThreads = chosen;
  ort.env.wasm.numThreads = chosen;
  ort.env.logLevel = "error";
}

/**
 * A verified model file as an onnxruntime-web session whose tensors match the manifest.
 * @param {BundleFile} entry
 * @param {Uint8Array} bytes
 * @returns {Promise<Model>}
 */
async function openModel(entry, bytes) {
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  } catch (error) {
    const reason = firstLine(error);
    if (reason.startsWith("no available backend")) {
      // onnxruntime-web's words when its WebAssembly did not start: the page's setup, not the model
      throw new VaeDigitsError(
        `onnxruntime-web cannot start (${reason}): serve ort-wasm-simd-threaded.wasm (and .mjs) ` +
          "next to the script that imports it, or name their folder in env.wasm.wasmPaths",
      );
    }
    throw new BundleError(`${entry.path} is not a model onnxruntime-web can load (${reason})`);
  }
  checkSignature(entry, session);
  return new Model(session);
}

/**
 * @param {BundleFile} entry
 * @param {ort.InferenceSession} session
 */
function checkSignature(entry, session) {
  /** @param {readonly { name: string, shape?: readonly (number | string)[] }[]} specs */
  const describe = (specs) =>
    specs
      .map((t) => `${t.name} [${(t.shape ?? []).join(", ")}]`)
      .sort()
      .join(", ");
  const declared = describe([...entry.inputs, ...entry.outputs]);
  const actual = describe([...session.inputMetadata, ...session.outputMetadata]);
  if (declared !== actual) {
    throw new BundleError(
      `${entry.path} does not have the inputs and outputs its manifest declares ` +
        `(${declared}; it has ${actual})`,
    );
  }
}

/** @typedef {[name: string, data: Float32Array, dims: number[]]} Feed  a model input */

/** One session, one run at a time: onnxruntime-web's WebAssembly sessions are not re-entrant. */
class Model {
  /** @param {ort.InferenceSession} session */
  constructor(session) {
    this.session = session;
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
  }

  /**
   * @param {Feed[]} feeds
   * @param {string[]} outputNames
   * @returns {Promise<Record<string, Float32Array>>}
   */
  run(feeds, outputNames) {
    const result = this.queue.then(() => this.#run(feeds, outputNames));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * @param {Feed[]} feeds
   * @param {string[]} outputNames
   * @returns {Promise<Record<string, Float32Array>>}
   */
  async #run(feeds, outputNames) {
    const tensors = Object.fromEntries(
      feeds.map(([name, data, dims]) => [name, new ort.Tensor("float32", data, dims)]),
    );
    const outputs = await this.session.run(tensors);
    const arrays = Object.fromEntries(
      outputNames.map((name) => [name, /** @type {Float32Array} */ (outputs[name].data)]),
    );
    for (const tensor of Object.values(outputs)) tensor.dispose();
    return arrays;
  }
}

// ---- downloading and checking ----

/**
 * @param {unknown} options
 * @returns {LoadOptions}
 */
function loadOptions(options) {
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

/**
 * @param {unknown} bundleUrl
 * @returns {URL}
 */
function directoryUrl(bundleUrl) {
  if (typeof bundleUrl !== "string" && !(bundleUrl instanceof URL)) {
    throw new VaeDigitsError(`bundleUrl must be a URL string, not ${typeof bundleUrl}`);
  }
  const text = String(bundleUrl);
  try {
    const url = new URL(text.endsWith("/") ? text : `${text}/`, globalThis.location?.href);
    new URL(MANIFEST, url); // an opaque URL (data:, javascript:) has no files under it
    return url;
  } catch {
    throw new VaeDigitsError(
      `bundleUrl ${JSON.stringify(text.slice(0, 200))} is not the URL of a directory ` +
        "(a path, or http(s)://host/path/)",
    );
  }
}

/**
 * @param {URL} url
 * @returns {Promise<unknown>}
 */
async function fetchManifest(url) {
  const bytes = await download(new URL(MANIFEST, url), MANIFEST, MAX_MANIFEST_BYTES);
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new BundleError(
      `${MANIFEST} is larger than ${MAX_MANIFEST_BYTES} bytes; a manifest is at most that`,
    );
  }
  return parseJson(bytes, MANIFEST);
}

/**
 * The bytes of a bundle file, after checking their size and sha256 against the manifest entry.
 * @param {URL} url
 * @param {BundleFile} entry
 * @returns {Promise<Uint8Array>}
 */
async function fetchVerified(url, entry) {
  const bytes = await download(new URL(entry.path, url), entry.path, entry.size);
  if (bytes.length !== entry.size) {
    throw new BundleError(
      `bundle file ${entry.path} does not match its manifest checksum (size differs: damaged or altered)`,
    );
  }
  if ((await sha256Hex(bytes)) !== entry.sha256) {
    throw new BundleError(
      `bundle file ${entry.path} does not match its manifest checksum (damaged or altered)`,
    );
  }
  return bytes;
}

/**
 * The body at `url`, read up to limit + 1 bytes: a file larger than it claims is never read whole.
 * @param {URL} url
 * @param {string} name
 * @param {number} limit
 * @returns {Promise<Uint8Array>}
 */
async function download(url, name, limit) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new BundleError(`bundle file ${name} cannot be downloaded from ${url} (${firstLine(error)})`);
  }
  if (!response.ok) {
    const what = response.status === 404 ? "is missing" : "cannot be downloaded";
    throw new BundleError(`bundle file ${name} ${what} (HTTP ${response.status} from ${url})`);
  }
  const parts = [];
  let size = 0;
  const reader = response.body?.getReader(); // no body (HTTP 204): no bytes
  try {
    while (reader) {
      const part = await reader.read();
      if (part.done) break;
      parts.push(part.value);
      size += part.value.length;
      if (size > limit) {
        await reader.cancel();
        break;
      }
    }
  } catch (error) {
    throw new BundleError(
      `bundle file ${name} broke off while downloading from ${url} (${firstLine(error)})`,
    );
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}

/**
 * @param {Uint8Array} bytes
 * @returns {Promise<string>}
 */
async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new VaeDigitsError(
      "WebCrypto is not available to check the bundle: serve the page over https or from 127.0.0.1",
    );
  }
  const data = /** @type {Uint8Array<ArrayBuffer>} */ (bytes); // never a SharedArrayBuffer's view
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * @param {Uint8Array} bytes
 * @param {string} name
 * @returns {unknown} the parsed JSON, unchecked
 */
function parseJson(bytes, name) {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new BundleError(`${name} is not readable JSON (${firstLine(error)})`);
  }
}

/** @param {unknown} error */
function errorName(error) {
  return error instanceof Error ? error.name : typeof error;
}

/** @param {unknown} error */
function firstLine(error) {
  const text = String(error instanceof Error ? error.message : error).trim();
  return (text.split("\n")[0] || errorName(error)).slice(0, 200);
}

// ---- the manifest (the checks of vae_runtime/manifest.py that this library relies on) ----

/**
 * Validate a parsed manifest.json; anything off raises a one-line BundleError naming the field.
 * @param {any} data parsed JSON, checked here
 * @returns {Manifest}
 */
function parseManifest(data) {
  if (!isObject(data)) throw new BundleError(`${MANIFEST} must hold a JSON object`);
  if (data.format !== BUNDLE_FORMAT) throw new BundleError(`${MANIFEST} is not a ${BUNDLE_FORMAT} manifest`);
  if (data.format_version !== 1) {
    throw new BundleError(
      `bundle format version ${JSON.stringify(data.format_version)} is not supported (this page reads 1); ` +
        "re-export the bundle or update the page",
    );
  }
  const kind = oneOf(data, "kind", ["vae", "cvae"]);
  const latentDim = boundedInt(data, "latent_dim", MAX_LATENT_DIM);
  const numClasses = kind === "cvae" ? boundedInt(data, "num_classes", MAX_CLASSES) : 0;
  if (kind === "vae" && (data.num_classes ?? 0) !== 0) {
    throw new BundleError("manifest field 'num_classes' must be 0 for a plain VAE");
  }
  const labels = data.labels ?? [];
  if (
    !Array.isArray(labels) ||
    labels.length !== numClasses ||
    new Set(labels).size !== numClasses ||
    !labels.every((label) => typeof label === "string" && label.length > 0 && label.length <= 128)
  ) {
    throw new BundleError(`manifest field 'labels' must list ${numClasses} distinct label names`);
  }
  if (JSON.stringify(data.image_shape) !== "[28,28,1]") {
    throw new BundleError(`manifest image_shape ${JSON.stringify(data.image_shape)} is not [28, 28, 1]`);
  }
  if (!Array.isArray(data.files) || data.files.length === 0 || data.files.length > MAX_FILES) {
    throw new BundleError(`manifest field 'files' must be a non-empty list of at most ${MAX_FILES} entries`);
  }
  const temperature = data.default_temperature ?? 1;
  if (typeof temperature !== "number" || !(temperature > 0 && temperature <= MAX_TEMPERATURE)) {
    throw new BundleError(`manifest default_temperature must be a number in (0, ${MAX_TEMPERATURE}]`);
  }
  const info = /** @type {Manifest} */ ({
    ...data,
    kind,
    latent_dim: latentDim,
    num_classes: numClasses,
    labels,
    default_temperature: temperature,
  });
  info.files = data.files.map((entry) => parseEntry(entry, info));
  return info;
}

/**
 * @param {any} entry parsed JSON, checked here
 * @param {Manifest} info
 * @returns {BundleFile}
 */
function parseEntry(entry, info) {
  if (!isObject(entry)) throw new BundleError("each entry of manifest 'files' must be an object");
  const path = entry.path;
  if (typeof path !== "string" || !/^[A-Za-z0-9_.+-]{1,128}$/.test(path) || path === "." || path === "..") {
    throw new BundleError(
      `manifest file name ${JSON.stringify(String(path).slice(0, 128))} ` +
        "must be a plain name inside the bundle",
    );
  }
  const role = oneOf(entry, "role", ["encoder", "decoder", "prior"]);
  const format = oneOf(entry, "format", ["onnx", "tflite", "json"]);
  if (!/^[0-9a-f]{64}$/.test(entry.sha256))
    throw new BundleError(`manifest sha256 of "${path}" is not 64 hex digits`);
  const size = boundedInt(entry, "size", role === "prior" ? MAX_PRIOR_BYTES : MAX_FILE_BYTES);
  const parsed = /** @type {BundleFile} */ ({ ...entry, role, format, size, default: entry.default ?? true });
  if (role !== "prior" && format === "onnx") checkDeclaredTensors(parsed, info);
  return parsed;
}

/**
 * The tensors a decoder or encoder of this kind and latent size must declare, as in expected_tensors.
 * @param {BundleFile} entry
 * @param {Manifest} info
 */
function checkDeclaredTensors(entry, info) {
  const latent = ["batch", info.latent_dim];
  /** @type {Record<string, (string | number)[]>} */
  const label = info.kind === "cvae" ? { label: ["batch", info.num_classes] } : {};
  const image = ["batch", 28, 28, 1];
  const [inputs, outputs] =
    entry.role === "decoder"
      ? [{ z: latent, ...label }, { image }]
      : [
          { image, ...label },
          { z_mean: latent, z_log_var: latent },
        ];
  /** @type {["inputs" | "outputs", Record<string, (string | number)[]>][]} */
  const expected = [
    ["inputs", inputs],
    ["outputs", outputs],
  ];
  for (const [key, wanted] of expected) {
    const declared = entry[key];
    const shapes = Array.isArray(declared)
      ? Object.fromEntries(declared.map((t) => [t?.name, t?.shape]))
      : {};
    const matches =
      Array.isArray(declared) &&
      declared.length === Object.keys(wanted).length &&
      Object.entries(wanted).every(
        ([name, shape]) => JSON.stringify(shapes[name]) === JSON.stringify(shape),
      ) &&
      declared.every((t) => t.dtype === "float32");
    if (!matches) {
      const needs = Object.entries(wanted)
        .map(([name, shape]) => `${name} [${shape.join(", ")}]`)
        .join(", ");
      throw new BundleError(
        `manifest ${key} of ${entry.path} disagree with a ${info.kind} of latent_dim ${info.latent_dim}, ` +
          `which needs (${needs}) float32`,
      );
    }
  }
}

/**
 * @param {Manifest} info
 * @param {BundleFile['role']} role
 * @param {BundleFile['format']} format
 * @param {string | null} precision
 * @returns {BundleFile | undefined}
 */
function findFile(info, role, format, precision) {
  return info.files.find(
    (entry) =>
      entry.role === role &&
      entry.format === format &&
      (precision ? entry.precision === precision : entry.default),
  );
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

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * @template {string} T
 * @param {Record<string, any>} data
 * @param {string} key
 * @param {readonly T[]} allowed
 * @returns {T}
 */
function oneOf(data, key, allowed) {
  if (!allowed.includes(data[key])) {
    throw new BundleError(
      `manifest field '${key}' is ${JSON.stringify(data[key])}; expected one of ${allowed.join(", ")}`,
    );
  }
  return data[key];
}

/**
 * @param {Record<string, any>} data
 * @param {string} key
 * @param {number} high
 * @returns {number}
 */
function boundedInt(data, key, high) {
  const value = data[key];
  if (!Number.isInteger(value) || value < 1 || value > high) {
    throw new BundleError(`manifest field '${key}' must be an integer in 1-${high}`);
  }
  return value;
}

// ---- the prior (vae_runtime/prior.py) ----

/**
 * Validate prior.json for this bundle and return a sampler.
 * @param {any} data parsed JSON, checked here
 * @param {Manifest} info
 * @param {string} [name]
 * @returns {Prior}
 */
function parsePrior(data, info, name = "prior.json") {
  const bad = (/** @type {string} */ what) => new BundleError(`${name}: ${what}`);
  const d = info.latent_dim;
  if (!isObject(data) || data.format !== PRIOR_FORMAT || data.format_version !== 1) {
    throw bad(`not a ${PRIOR_FORMAT} version 1 file`);
  }
  if (data.kind !== "gmm" || data.latent_dim !== d) {
    throw bad(`must be a kind 'gmm' prior of latent_dim ${d}, as the bundle`);
  }
  if (JSON.stringify(data.labels) !== JSON.stringify(info.labels))
    throw bad("its labels differ from the bundle's");
  const expected = Math.max(info.labels.length, 1);
  if (!Array.isArray(data.mixtures) || data.mixtures.length !== expected) {
    throw bad(`must hold ${expected} mixtures, one per label`);
  }
  const sizes = new Set(data.mixtures.map((m) => (Array.isArray(m?.weights) ? m.weights.length : 0)));
  const [components] = sizes;
  if (sizes.size !== 1 || !(components > 0 && components <= MAX_COMPONENTS)) {
    throw bad(`every mixture must have the same number of components, 1-${MAX_COMPONENTS}`);
  }
  return new Prior(
    data.mixtures.map((mixture) => parseMixture(mixture, components, d, bad)),
    d,
  );
}

/**
 * @param {any} mixture parsed JSON, checked here
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
  if (weights.some((w) => w < 0) || Math.abs(total - 1) > 1e-4)
    throw bad("mixture weights must be >= 0 and sum to 1");
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
 * A nested array of the given shape as a flat Float64Array of finite numbers.
 * @param {unknown} value
 * @param {number[]} shape
 * @param {(what: string) => BundleError} bad
 * @returns {Float64Array}
 */
function numbers(value, shape, bad) {
  /** @type {number[]} */
  const flat = [];
  /** @type {(item: unknown, depth: number) => void} */
  const walk = (item, depth) => {
    if (depth === shape.length) {
      if (typeof item !== "number" || !Number.isFinite(item))
        throw bad(`expected finite numbers of shape [${shape}]`);
      flat.push(item);
      return;
    }
    if (!Array.isArray(item) || item.length !== shape[depth])
      throw bad(`expected finite numbers of shape [${shape}]`);
    for (const child of item) walk(child, depth + 1);
  };
  walk(value, 0);
  return Float64Array.from(flat);
}

/** @typedef {{ cumulative: Float64Array, means: Float64Array, cholesky: Float64Array }} Mixture */

class Prior {
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
   * @param {Float32Array} eps
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

// ---- the seeded random stream ----

/** xoshiro128** seeded through splitmix32; normals by the Box-Muller transform. */
class Random {
  /**
   * @param {number} seed a non-negative safe integer
   */
  constructor(seed) {
    let state = (seed % 2 ** 32) ^ Math.imul(Math.floor(seed / 2 ** 32), 0x9e3779b9);
    const splitmix = () => {
      state = (state + 0x9e3779b9) | 0;
      let x = state;
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      return (x ^ (x >>> 16)) >>> 0;
    };
    this.s = Uint32Array.from([splitmix(), splitmix(), splitmix(), splitmix()]);
  }

  next() {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A double in [0, 1) with 53 random bits. */
  uniform() {
    return ((this.next() >>> 5) * 67108864 + (this.next() >>> 6)) / 9007199254740992;
  }

  /**
   * @param {number} count
   * @returns {Float64Array}
   */
  uniforms(count) {
    return Float64Array.from({ length: count }, () => this.uniform());
  }

  /**
   * @param {number} count
   * @returns {Float32Array}
   */
  normals(count) {
    const values = new Float32Array(count);
    for (let i = 0; i < count; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(1 - this.uniform())); // 1 - u in (0, 1]: log is finite
      const angle = 2 * Math.PI * this.uniform();
      values[i] = radius * Math.cos(angle);
      if (i + 1 < count) values[i + 1] = radius * Math.sin(angle);
    }
    return values;
  }
}

/**
 * @param {number} x
 * @param {number} k
 */
function rotl(x, k) {
  return (x << k) | (x >>> (32 - k));
}

// ---- argument checks ----

/**
 * @param {unknown} values
 * @param {string} name
 * @param {number} width
 * @returns {{ data: Float32Array, rows: number }}
 */
function asMatrix(values, name, width) {
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
function asImages(input) {
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
function oneHot(labelIds, classes) {
  const rows = new Float32Array(labelIds.length * classes);
  labelIds.forEach((id, row) => (rows[row * classes + id] = 1));
  return rows;
}

/**
 * @param {number} value
 * @param {string} name
 * @returns {number}
 */
function positiveInt(value, name) {
  if (!Number.isInteger(value) || value <= 0)
    throw new VaeDigitsError(`${name} must be a positive integer, not ${value}`);
  return value;
}

/**
 * @param {number} value
 * @returns {number}
 */
function checkTemperature(value) {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new VaeDigitsError(`temperature must be a finite number > 0, not ${value}`);
  }
  if (value > MAX_TEMPERATURE)
    throw new VaeDigitsError(`temperature ${value} is above the limit of ${MAX_TEMPERATURE}`);
  return value;
}

/**
 * @param {number | null | undefined} value
 * @returns {number}
 */
function checkSeed(value) {
  if (value === null || value === undefined) return crypto.getRandomValues(new Uint32Array(1))[0];
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new VaeDigitsError(`seed must be a non-negative integer or null, not ${value}`);
  }
  return value;
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
 * @property {string} [precision] "fp32", "fp16", "int8"
 * @property {string} sha256 64 hex digits
 * @property {number} size bytes
 * @property {boolean} default whether it is the default file of its role and format
 * @property {TensorSpec[]} inputs
 * @property {TensorSpec[]} outputs
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
 * @property {number | null} [seed] a non-negative safe integer; null draws a fresh seed
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
