/** onnxruntime-web: started once per page, one session per model file, checked against the manifest. */
import * as ort from "onnxruntime-web/wasm";
import { BundleError, VaeDigitsError, firstLine } from "./errors.js";

/** @import { BundleFile } from "../vae-digits.js" */

/** @type {number | null} */
let runtimeThreads = null;

/**
 * @param {number} threads
 */
export function startRuntime(threads) {
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
export async function openModel(entry, bytes) {
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
export class Model {
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

/** The WebAssembly threads onnxruntime-web runs on (1 unless the page is cross-origin isolated). */
export function threadsInUse() {
  return globalThis.crossOriginIsolated ? (ort.env.wasm.numThreads ?? 1) : 1;
}

/** The version of onnxruntime-web in use. */
export function runtimeVersion() {
  return ort.env.versions?.web ?? "?";
}
