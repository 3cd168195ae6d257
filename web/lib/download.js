/** Downloading a bundle's files and checking them against the manifest (size, sha256). */
import { BundleError, VaeDigitsError, firstLine } from "./errors.js";
import { SPEC } from "./spec.js";

/** @import { BundleFile } from "../vae-digits.js" */

const MANIFEST = SPEC.manifest.file;
const MAX_MANIFEST_BYTES = SPEC.manifest.max_bytes;

/**
 * @param {unknown} bundleUrl
 * @returns {URL}
 */
export function directoryUrl(bundleUrl) {
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
export async function fetchManifest(url) {
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
export async function fetchVerified(url, entry) {
  const bytes = await download(new URL(encodeURIComponent(entry.path), url), entry.path, entry.size);
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
export function parseJson(bytes, name) {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new BundleError(`${name} is not readable JSON (${firstLine(error)})`);
  }
}
