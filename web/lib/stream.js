/**
 * The portable seeded stream, version 1: the same numbers for a seed as vae_runtime.stream in Python
 * and the C library (its specification is vae_runtime/stream.py's docstring, and docs/stream.md).
 * Philox4x32-10 keyed by the seed, counter (block, digit, 0, 0); 24-bit uniforms; Box-Muller normals
 * in double precision.
 * @module
 */

const MULTIPLIERS = [0xd2511f53, 0xcd9e8d57];
const KEY_STEPS = [0x9e3779b9, 0xbb67ae85];
const ROUNDS = 10;
export const MAX_STREAM_SEED = 2n ** 64n - 1n;
export const MAX_STREAM_DIGITS = 2 ** 32;

/**
 * The high and low 32-bit words of the 64-bit product of two 32-bit words (a double holds only 53
 * bits, so the high word is summed from 16-bit halves).
 * @param {number} a
 * @param {number} b
 * @returns {[number, number]}
 */
function mulhilo(a, b) {
  const aHi = a >>> 16;
  const aLo = a & 0xffff;
  const bHi = b >>> 16;
  const bLo = b & 0xffff;
  const cross1 = aLo * bHi;
  const cross2 = aHi * bLo;
  const carry = (((aLo * bLo) >>> 16) + (cross1 & 0xffff) + (cross2 & 0xffff)) >>> 16;
  const hi = (aHi * bHi + (cross1 >>> 16) + (cross2 >>> 16) + carry) >>> 0;
  return [hi, Math.imul(a, b) >>> 0];
}

/**
 * Philox4x32-10 of one counter under a key.
 * @param {ArrayLike<number>} counter four 32-bit words
 * @param {number} k0 the key's low word: seed mod 2^32
 * @param {number} k1 the key's high word: floor(seed / 2^32)
 * @returns {Uint32Array} four 32-bit words
 */
export function philox4x32(counter, k0, k1) {
  let [c0, c1, c2, c3] = Array.from(counter, (word) => word >>> 0);
  for (let round = 0; round < ROUNDS; round += 1) {
    const [hi0, lo0] = mulhilo(MULTIPLIERS[0], c0);
    const [hi1, lo1] = mulhilo(MULTIPLIERS[1], c2);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + KEY_STEPS[0]) >>> 0;
    k1 = (k1 + KEY_STEPS[1]) >>> 0;
  }
  return Uint32Array.of(c0, c1, c2, c3);
}

/**
 * A 32-bit word as a uniform number in (0, 1): (floor(w / 256) + 0.5) / 2^24.
 * @param {number} word
 */
export function uniform(word) {
  return ((word >>> 8) + 0.5) / 16777216;
}

/**
 * The key of a seed: a non-negative integer below 2^64 (a safe integer, or a bigint for larger ones).
 * @param {number | bigint} seed
 * @returns {[number, number]}
 */
export function streamKey(seed) {
  const big = BigInt(seed);
  if (big < 0n || big > MAX_STREAM_SEED) throw new RangeError(`a seed must be an integer in 0..${MAX_STREAM_SEED}`);
  return [Number(big & 0xffffffffn), Number(big >> 32n)];
}

/**
 * The draws of digits start .. start + count - 1: the uniform numbers that choose their mixture
 * components, and their standard normals row by row (count x latentDim), as vae_runtime.stream.draws.
 * @param {number | bigint} seed
 * @param {number} count
 * @param {number} latentDim
 * @param {number} [start]
 * @returns {{ choosers: Float64Array, normals: Float64Array }}
 */
export function draws(seed, count, latentDim, start = 0) {
  if (start < 0 || count < 0 || start + count > MAX_STREAM_DIGITS)
    throw new RangeError(`digit indexes must lie in 0..${MAX_STREAM_DIGITS - 1}`);
  const [k0, k1] = streamKey(seed);
  const choosers = new Float64Array(count);
  const normals = new Float64Array(count * latentDim);
  for (let i = 0; i < count; i += 1) {
    choosers[i] = uniform(philox4x32([0, start + i, 0, 0], k0, k1)[0]);
    for (let block = 0; block * 4 < latentDim; block += 1) {
      const words = philox4x32([block + 1, start + i, 0, 0], k0, k1);
      for (let pair = 0; pair < 2; pair += 1) {
        const radius = Math.sqrt(-2 * Math.log(uniform(words[2 * pair])));
        const angle = 2 * Math.PI * uniform(words[2 * pair + 1]);
        const j = block * 4 + pair * 2;
        if (j < latentDim) normals[i * latentDim + j] = radius * Math.cos(angle);
        if (j + 1 < latentDim) normals[i * latentDim + j + 1] = radius * Math.sin(angle);
      }
    }
  }
  return { choosers, normals };
}
