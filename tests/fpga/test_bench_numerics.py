"""``tritium bench numerics``: the contract's variants change model.numerics only while they run."""

import numpy as np

from fpga.bench.numerics import VARIANTS, normalized_apply_scale, r127_absmax_quantize, variant
from model import numerics as nx


def test_variants_are_restored():
    before = (nx.apply_scale, nx.absmax_quantize, nx.NORM_MAX_BITLEN)
    with variant(VARIANTS["15-bit normalization"]):
        assert nx.NORM_MAX_BITLEN == 15 and nx.apply_scale is normalized_apply_scale
        e, xn = nx.normalize(np.array([1 << 20, -5]))
        assert e == 6 and np.abs(xn).max() < 1 << 15
    assert (nx.apply_scale, nx.absmax_quantize, nx.NORM_MAX_BITLEN) == before


def test_narrowings_agree_where_nothing_is_narrowed():
    """Operands already under 2^17 scale as the contract does; R·127 codes are the contract's or one off."""
    rng = np.random.default_rng(1)
    print("seed 1")
    x = rng.integers(-(1 << 16), 1 << 16, 200)
    scale = (45000, -30)
    assert np.array_equal(normalized_apply_scale(x, scale, 16), nx.apply_scale(x, scale, 16))
    wide = (x << 10) + rng.integers(0, 1 << 10, x.size)
    assert not np.array_equal(normalized_apply_scale(wide, scale, 16), nx.apply_scale(wide, scale, 16))
    for u in (rng.integers(-(1 << 30), 1 << 30, 64), rng.integers(-300, 300, 64)):
        codes, peak = r127_absmax_quantize(u)
        want, want_peak = nx.absmax_quantize(u)
        assert peak == want_peak and np.abs(codes).max() <= nx.ACT_MAX
        assert np.abs(codes - want).max() <= 1
