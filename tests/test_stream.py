"""The portable seeded stream (vae_runtime.stream): Philox4x32-10, uniforms, Box-Muller normals."""

import math

import numpy as np
import pytest

from vae_runtime import stream

# Random123's published known answers for Philox4x32-10 (counter, key as (k0, k1), output).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_philox_gives_random123s_known_answers(counter, key, expected):
    seed = key[0] | key[1] << 32
    assert tuple(int(w) for w in stream.philox4x32([counter], seed)[0]) == expected


def test_uniforms_are_the_centres_of_2_to_the_24_cells_of_the_open_interval():
    u = stream.uniforms(np.array([0, 255, 256, 0xFFFFFFFF], np.uint32))
    assert u[0] == u[1] == 0.5 * 2**-24
    assert u[2] == 1.5 * 2**-24
    assert u[3] == 1 - 0.5 * 2**-24


def test_digit_i_is_the_same_whatever_the_request():
    whole = stream.draws(seed=11, count=40, latent_dim=16)  # numpy's route
    part = stream.draws(seed=11, count=3, latent_dim=16, start=30)  # Python's integers
    for a, b in zip(part, whole, strict=True):
        np.testing.assert_array_equal(a, b[30:33])


def test_normal_j_follows_the_specified_block_and_pair():
    seed, digit, j = 2**40 + 3, 6, 13  # block 1 + 3, pair 0, odd: the sine
    words = stream.philox4x32([[1 + j // 4, digit, 0, 0]], seed)[0]
    u1, u2 = stream.uniforms(words[:2])
    expected = math.sqrt(-2 * math.log(u1)) * math.sin(2 * math.pi * u2)
    assert stream.draws(seed, 1, 16, start=digit)[1][0, j] == pytest.approx(expected, rel=1e-15)


def test_block_0_chooses_the_component():
    words = stream.philox4x32([[0, 4, 0, 0]], seed=99)[0]
    assert stream.draws(99, 1, 16, start=4)[0][0] == stream.uniforms(words[:1])[0]


def test_normals_are_standard_normal_and_independent():
    u, n = stream.draws(seed=3, count=25_000, latent_dim=16)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    correlation = np.corrcoef(n.T)
    assert np.abs(correlation - np.eye(16)).max() < 0.03
    # the share within one standard deviation, against the normal's 68.27 %
    assert abs((np.abs(n) < 1).mean() - 0.6827) < 0.005
    assert abs(u.mean() - 0.5) < 0.01 and u.min() > 0 and u.max() < 1


def test_seeds_differ_and_latent_sizes_share_a_prefix():
    a, b = stream.draws(0, 4, 8)[1], stream.draws(1, 4, 8)[1]
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(stream.draws(0, 4, 5)[1], a[:, :5])


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "7", True])
def test_a_bad_seed_is_refused_with_its_range(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in 0\.\.18446744073709551615"):
        stream.draws(seed, 1, 4)


@pytest.mark.parametrize(("count", "start"), [(1, -1), (2, 2**32 - 1), (-1, 0)])
def test_digit_indexes_past_one_counter_word_are_refused(count, start):
    with pytest.raises(ValueError, match="digit indexes must lie in 0..4294967295"):
        stream.draws(0, count, 4, start=start)
