"""The numeric contract's primitives (model/numerics.py), exhaustively where widths are small."""

import math

import numpy as np
import pytest

from model import numerics as nx


def exact_quantize(u: np.ndarray, m: int) -> np.ndarray:
    """127 u / m as an exact rational."""
    return 127 * u.astype(np.float64) / m


@pytest.mark.parametrize("bits", [4, 8, 11])
def test_absmax_quantize_exhaustive_small_widths(bits):
    """Every (element, max) pair of a signed ``bits``-bit input: within 1/2 + 2^-8 of 127 u/m.

    The reciprocal R = ceil(2^33/m_n) errs by < 2^-9 relative, so q is the exact rounding (half
    away from zero) except just below a half; symmetric in sign.
    """
    for m in range(1, 1 << (bits - 1)):
        u = np.arange(-m, m + 1)
        q, peak = nx.absmax_quantize(np.concatenate([u, [m]]))
        q = q[:-1]
        assert peak == m
        exact = exact_quantize(u, m)
        assert np.abs(q - exact).max() <= 0.5 + 2 ** -8
        frac = np.abs(exact - np.trunc(exact))
        clear = (frac >= 0.5) | (frac < 0.5 - 2 ** -8)
        expected = np.sign(exact) * np.floor(np.abs(exact) + 0.5)
        assert (q[clear] == expected[clear]).all()
        assert (q == -q[::-1]).all()       # symmetric: q(-u) = -q(u)
        assert q.max() == 127 and q.min() == -127


def test_absmax_quantize_edge_cases():
    q, m = nx.absmax_quantize(np.zeros(7, dtype=np.int64))
    assert m == 0 and not q.any()
    q, m = nx.absmax_quantize([-(2 ** 40), 2 ** 39, 1, 0])
    assert m == 2 ** 40 and q.tolist() == [-127, 64, 0, 0]
    q, _ = nx.absmax_quantize([1])
    assert q.tolist() == [127]
    # Exact ties round away from zero: 127 * 1/254 = 0.5 -> 1, 127 * 3/254 = 1.5 -> 2.
    q, _ = nx.absmax_quantize([1, -3, 254])
    assert q.tolist() == [1, -2, 127]


def test_absmax_quantize_is_invariant_to_power_of_two_scaling(rng):
    u = rng.integers(-(2 ** 16), 2 ** 16, 64)
    q, _ = nx.absmax_quantize(u)
    for k in (1, 5, 9):
        assert (nx.absmax_quantize(u << k)[0] == q).all()


def test_acc_bits():
    assert nx.acc_bits(1) == 9        # +128 (= -1 x -128) does not fit 8 bits
    assert nx.acc_bits(512) == 18
    assert nx.acc_bits(2560) == 20
    for k in range(1, 5000):
        assert k * 128 < 2 ** (nx.acc_bits(k) - 1) and -k * 128 >= -(2 ** (nx.acc_bits(k) - 1))
        assert k * 128 >= 2 ** (nx.acc_bits(k) - 2)          # and no wider than needed
    with pytest.raises(ValueError, match="K must be >= 1"):
        nx.acc_bits(0)


def test_rounding_helpers():
    assert nx.rshift_round([5, 6, 7, -5, -6, -7], 2).tolist() == [1, 2, 2, -1, -1, -2]
    assert nx.rshift_round([3], -2).tolist() == [12]
    assert nx.truncate_magnitude([7, -7], 1).tolist() == [3, -3]
    assert nx.saturate([2 ** 40, -(2 ** 40), 5], 32).tolist() == [2 ** 31 - 1, -(2 ** 31), 5]
    e, xn = nx.normalize([2 ** 20, -3])
    assert e == 4 and xn.tolist() == [2 ** 16, 0]


def relative(a, b):
    return abs(a - b) / abs(b)


def test_scale_operations_match_real_arithmetic(rng):
    values = np.exp(rng.uniform(-30, 30, 200))
    scales = [nx.scale_from_float(float(v)) for v in values]
    for (a, va), (b, vb) in zip(zip(scales, values), zip(scales[1:], values[1:])):
        assert 2 ** 15 <= a[0] < 2 ** 16
        assert relative(float(nx.scale_to_float(a)), va) <= 2 ** -16
        assert relative(float(nx.scale_to_float(nx.scale_mul(a, b))), va * vb) <= 2 ** -14
        assert relative(float(nx.scale_to_float(nx.scale_recip(a))), 1 / va) <= 2 ** -14
        assert relative(float(nx.scale_to_float(nx.scale_rsqrt(a))), va ** -0.5) <= 2 ** -14
        assert relative(float(nx.scale_to_float(nx.scale_add(a, b))), va + vb) <= 2 ** -14
    assert nx.scale_from_int(0, 5) == (0, 0)
    assert nx.scale_to_float(nx.scale_add((0, 0), nx.scale_from_float(3.0))) == 3.0
    with pytest.raises(ZeroDivisionError):
        nx.scale_recip((0, 0))


def test_apply_scale_rounds_half_up():
    half = nx.scale_from_float(0.5)
    assert nx.apply_scale([1, 3, -1, -3], half, 0).tolist() == [1, 2, 0, -1]
    assert nx.apply_scale([3], nx.scale_from_float(2.0 ** -16), 16).tolist() == [3]


def test_rope_tables_and_rotation():
    cos, sin = nx.rope_int_tables(8, 10000.0, 32)
    inv_freq = 1 / 10000.0 ** (np.arange(0, 8, 2) / 8)
    angles = np.arange(32)[:, None] * inv_freq
    assert np.abs(cos / 2 ** 14 - np.cos(angles)).max() <= 2 ** -15
    assert np.abs(sin / 2 ** 14 - np.sin(angles)).max() <= 2 ** -15
    x = np.array([1000, -2000, 300, 40, 5, 600, -7000, 80])
    assert (nx.rope_rotate(x, cos[0], sin[0]) == x).all()          # position 0: identity
    rotated = nx.rope_rotate(x, cos[5], sin[5])
    a, b = x[:4], x[4:]
    expect = np.concatenate([a * np.cos(angles[5]) - b * np.sin(angles[5]),
                             b * np.cos(angles[5]) + a * np.sin(angles[5])])
    assert np.abs(rotated - expect).max() <= 1


def test_exp2_table():
    assert nx.exp2_neg([0]).tolist() == [2 ** 15]
    deltas = np.arange(0, 17 * 256)
    values = nx.exp2_neg(deltas)
    assert (np.diff(values) <= 0).all()
    assert np.abs(values - 2 ** 15 * np.exp2(-deltas / 256)).max() <= 1
    assert nx.exp2_neg([16 * 256]).tolist() == [0]
    with pytest.raises(ValueError):
        nx.exp2_neg([-1])


def test_silu_table():
    x = np.arange(-20 * 1024, 20 * 1024, 7)
    real = x / 1024
    expect = real / (1 + np.exp(-real))
    assert np.abs(nx.silu_q10(x) / 1024 - expect).max() < 0.02 * np.maximum(1, np.abs(real)).max()
    assert nx.silu_q10([0]).tolist() == [0]


def test_xorshift32():
    assert nx.xorshift32(1) == 270369    # Marsaglia's xorshift32 from state 1
    assert nx.xorshift_seed(0) == 1 and nx.xorshift_seed(2 ** 32 + 5) == 5
    state, seen = 1, set()
    for _ in range(1000):
        state = nx.xorshift32(state)
        assert 0 < state < 2 ** 32
        seen.add(state)
    assert len(seen) == 1000


def test_scale_from_float_rejects_bad_values():
    with pytest.raises(ValueError, match="finite and >= 0"):
        nx.scale_from_float(-1.0)
    with pytest.raises(ValueError):
        nx.scale_from_float(math.inf)
