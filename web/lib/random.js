/** The seeded random stream of `generate`: this library's own, the same in every browser. */

/** xoshiro128** seeded through splitmix32; normals by the Box-Muller transform. */
export class Random {
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
