/**
 * Pixels in and out: a drawn or uploaded image prepared as MNIST lays out a digit, and model outputs
 * rounded to grey levels. The preprocessing is vae_runtime's (`read_digit`), step for step, with the
 * numbers of the bundle spec's "digit" (lib/spec.js); docs/browser.md describes it.
 */
import { VaeDigitsError } from "./errors.js";
import { SPEC } from "./spec.js";

const DIGIT = SPEC.digit;

/** Pixels in one digit: 28 x 28. */
export const PIXELS = DIGIT.size * DIGIT.size;

/**
 * Float images in [0, 1] -> grey levels 0-255, rounded as numpy's rint(images * 255) in float32.
 * @param {ArrayLike<number>} images
 * @returns {Uint8Array}
 */
export function toGreyLevels(images) {
  const levels = new Uint8Array(images.length);
  for (let i = 0; i < images.length; i++) levels[i] = roundHalfEven(Math.fround(images[i] * 255));
  return levels;
}

/**
 * An RGBA image (an ImageData: a canvas's pixels, an uploaded picture drawn on one) -> 28 x 28 grey
 * levels laid out like MNIST, as vae_runtime's `read_digit` prepares an uploaded image: grey by
 * Pillow's luma (L = (19595 R + 38470 G + 7471 B + 32768) >> 16, alpha ignored), then `mnistLike`.
 * Returns null for a blank image.
 *
 * Example:
 *   const digit = readDigit(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height));
 *
 * @param {{ data: ArrayLike<number>, width: number, height: number }} image
 * @returns {Uint8Array | null}
 */
export function readDigit({ data, width, height }) {
  checkSize(data.length, width, height, 4);
  const grey = new Uint8Array(width * height);
  for (let p = 0; p < grey.length; p++) {
    const [r, g, b] = [data[4 * p], data[4 * p + 1], data[4 * p + 2]];
    grey[p] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
  }
  return mnistLike(grey, width, height);
}

/**
 * Grey levels of any size -> 28 x 28 grey levels laid out like MNIST (white ink on black), as
 * vae_runtime's `read_digit` does it: inverted when the median is above 127 (dark ink on light
 * paper), cropped to the ink (pixels above a fifth of the brightest), scaled to fit 20 x 20 by area
 * averaging, rounded half to even and centred. Returns null for a blank image.
 *
 * Example:
 *   const digit = mnistLike(grey, 280, 280);  // Uint8Array(784) or null
 *
 * @param {ArrayLike<number>} grey width * height grey levels 0-255, row-major
 * @param {number} width
 * @param {number} height
 * @returns {Uint8Array | null}
 */
export function mnistLike(grey, width, height) {
  checkSize(grey.length, width, height, 1);
  let levels = Float64Array.from(grey);
  if (median(levels) > DIGIT.invert_when_median_above) levels = levels.map((value) => 255 - value);
  const brightest = levels.reduce((high, value) => Math.max(high, value), 0);
  if (brightest === 0) return null;
  const box = inkBox(levels, width, height, DIGIT.ink_threshold * brightest);
  const scale = DIGIT.fit / Math.max(box.width, box.height);
  const outWidth = Math.max(1, roundHalfEven(box.width * scale));
  const outHeight = Math.max(1, roundHalfEven(box.height * scale));
  const small = resizeArea(levels, width, box, outWidth, outHeight);
  const canvas = new Uint8Array(PIXELS);
  const top = Math.floor((DIGIT.size - outHeight) / 2);
  const left = Math.floor((DIGIT.size - outWidth) / 2);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      canvas[(top + y) * DIGIT.size + left + x] = roundHalfEven(small[y * outWidth + x]);
    }
  }
  return canvas;
}

/**
 * @param {number} length
 * @param {number} width
 * @param {number} height
 * @param {number} channels values per pixel
 */
function checkSize(length, width, height, channels) {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new VaeDigitsError(`image width and height must be positive integers, not ${width} x ${height}`);
  }
  if (length !== channels * width * height) {
    throw new VaeDigitsError(
      `a ${width} x ${height} image has ${channels * width * height} values (${channels} a pixel), not ${length}`,
    );
  }
}

/** The median as numpy's: the mean of the two middle values of an even count. @param {Float64Array} values */
function median(values) {
  const sorted = values.slice().sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Rounded to the nearest integer, ties to even: numpy's rint and Python's round. @param {number} value */
function roundHalfEven(value) {
  const rounded = Math.round(value);
  return rounded - value === 0.5 && rounded % 2 !== 0 ? rounded - 1 : rounded;
}

/**
 * @param {Float64Array} grey
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
 * @param {Float64Array} grey
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
