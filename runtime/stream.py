"""The portable seeded stream: the same latents for a seed in Python, the browser, vae-serve and C.

Every draw is a function of the seed and of its place, not of what was drawn before, so any language
with 32-bit integers and IEEE doubles computes the same numbers, and digit i of a request is the same
whatever the request's size.

Specification (version 1):

1. The generator is Philox4x32-10 (Salmon et al. 2011, "Parallel Random Numbers: As Easy as 1, 2,
   3"): a 128-bit counter (c0, c1, c2, c3) and a 64-bit key (k0, k1), as 32-bit words, give four
   32-bit words. Ten rounds; a round multiplies c0 by 0xD2511F53 and c2 by 0xCD9E8D57 into 64-bit
   products (hi0, lo0) and (hi1, lo1) and makes (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); between
   rounds the key grows by (0x9E3779B9, 0xBB67AE85) modulo 2^32. Counter 0 and key 0 give
   (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8), Random123's known answer.
2. The key is the seed, 0 <= seed < 2^64: k0 = seed mod 2^32, k1 = seed div 2^32.
3. Digit i of a request (0 <= i < 2^32) reads the blocks with counter (b, i, 0, 0), b = 0, 1, 2, ...
4. A word w becomes a uniform number u = (floor(w / 256) + 0.5) / 2^24, in (0, 1) and exact in
   float64.
5. Block 0's first word chooses the digit's mixture component (below); its other words are unused.
6. Normal j of the digit (0 <= j < latent_dim) comes from block 1 + floor(j / 4): words 2p and 2p + 1
   with p = floor((j mod 4) / 2) give u1, u2, and Box-Muller in float64 gives
   sqrt(-2 ln u1) * cos(2 pi u2) for even j and sqrt(-2 ln u1) * sin(2 pi u2) for odd j.
7. The latent, in float64 and then rounded to float32: with a prior (prior.json), the component of the
   digit's label is k = #{c : cumsum(weights)[c] <= u} (the cumulative sum taken in order in float64,
   k capped at K - 1) and z = means[k] + temperature * cholesky[k] @ n; without one, z = temperature * n.

Languages differ only where their libm's log, cos and sin differ in the last bit of a double, which
rounding to float32 hides but for a rare value on a rounding boundary: latents agree within float32
rounding.

Example:
    >>> from vae_runtime.stream import draws, philox4x32
    >>> [hex(w) for w in philox4x32([[0, 0, 0, 0]], seed=0)[0]]
    ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    >>> choosers, normals = draws(seed=7, count=2, latent_dim=3)
    >>> choosers.shape, normals.shape
    ((2,), (2, 3))
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

VERSION = 1
MAX_SEED = 2**64 - 1
MAX_DIGITS = 2**32  # digit indexes of one request: one counter word
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
_WORD = np.uint64(0xFFFFFFFF)
_ROUNDS = 10
_SCALAR_ROWS = 16

Words = npt.NDArray[np.uint32]
Floats = npt.NDArray[np.float64]


def philox4x32(counters: npt.ArrayLike, seed: int) -> Words:
    """Philox4x32-10 of each row of `counters` (n, 4) under the key made from `seed`: (n, 4) uint32."""
    rows = np.asarray(counters, dtype=np.uint64).reshape(-1, 4)
    keys = _round_keys(*_key(seed))
    if len(rows) <= _SCALAR_ROWS:  # a few blocks: Python's integers beat numpy's per-call overhead
        return np.array([_philox_scalar(row, keys) for row in rows.tolist()], np.uint32).reshape(-1, 4)
    c0, c1, c2, c3 = (rows[:, i].copy() for i in range(4))
    m0, m1 = (np.uint64(m) for m in _MULTIPLIERS)
    shift = np.uint64(32)
    for k0, k1 in keys:
        p0, p1 = c0 * m0, c2 * m1
        c0, c1, c2, c3 = (
            (p1 >> shift) ^ c1 ^ np.uint64(k0),
            p1 & _WORD,
            (p0 >> shift) ^ c3 ^ np.uint64(k1),
            p0 & _WORD,
        )
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def _philox_scalar(counter: list[int], keys: list[tuple[int, int]]) -> tuple[int, int, int, int]:
    c0, c1, c2, c3 = counter
    m0, m1 = _MULTIPLIERS
    for k0, k1 in keys:
        p0, p1 = c0 * m0, c2 * m1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c3 ^ k1, p0 & 0xFFFFFFFF
    return c0, c1, c2, c3


def _round_keys(k0: int, k1: int) -> list[tuple[int, int]]:
    steps = range(_ROUNDS)
    return [((k0 + r * _KEY_STEPS[0]) & 0xFFFFFFFF, (k1 + r * _KEY_STEPS[1]) & 0xFFFFFFFF) for r in steps]


def uniforms(words: npt.ArrayLike) -> Floats:
    """32-bit words -> uniform numbers in (0, 1): (floor(w / 256) + 0.5) / 2^24."""
    return ((np.asarray(words, dtype=np.uint32) >> 8).astype(np.float64) + 0.5) * 2.0**-24


def draws(seed: int, count: int, latent_dim: int, start: int = 0) -> tuple[Floats, Floats]:
    """The draws of digits start .. start + count - 1: the uniform numbers (count,) that choose their
    mixture components, and their standard normals (count, latent_dim), both float64."""
    if start < 0 or count < 0 or start + count > MAX_DIGITS:
        raise ValueError(f"digit indexes must lie in 0..{MAX_DIGITS - 1}")
    blocks = 1 + -(-latent_dim // 4)  # block 0: the component; then four normals a block
    counters = np.zeros((count, blocks, 4), np.uint64)
    counters[..., 0] = np.arange(blocks, dtype=np.uint64)[None, :]
    counters[..., 1] = np.arange(start, start + count, dtype=np.uint64)[:, None]
    u = uniforms(philox4x32(counters.reshape(-1, 4), seed)).reshape(count, blocks, 4)
    pairs = u[:, 1:].reshape(count, -1, 2)  # (count, pairs, [u1, u2])
    radius = np.sqrt(-2.0 * np.log(pairs[..., 0]))
    angle = 2.0 * np.pi * pairs[..., 1]
    normals = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=-1).reshape(count, -1)
    return u[:, 0, 0], normals[:, :latent_dim]


def _key(seed: int) -> tuple[int, int]:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a seed must be an integer in 0..{MAX_SEED}")
    seed = int(seed)
    return seed & 0xFFFFFFFF, seed >> 32
