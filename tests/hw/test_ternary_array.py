# amaranth: UnusedElaboratable=no
"""TernaryArray in the Amaranth simulator, bit for bit against model.integer.ternary_matmul."""

import numpy as np
import pytest

from hw.ternary_array import TernaryArray
from hw.testing import run_matmul
from model.integer import ternary_matmul
from model.numerics import acc_bits

SHAPES = [  # (rows, cols, simd, k_max, drain), (n, k, t)
    ((3, 2, 4, 64, 1), (7, 37, 5)),
    ((4, 1, 8, 128, 1), (9, 128, 1)),
    ((2, 3, 1, 16, 1), (5, 16, 4)),
    ((1, 1, 2, 8, 1), (1, 1, 1)),
    ((4, 2, 4, 64, 1), (9, 1, 5)),      # K = 1: every beat ends a tile, tiles shorter than rows
    ((4, 1, 2, 8, 1), (12, 6, 1)),      # 3 beats per tile, 4 rows
    ((4, 1, 2, 8, 2), (11, 6, 1)),      # two rows a transfer
    ((8, 1, 4, 64, 8), (19, 24, 1)),    # a whole tile a transfer
    ((4, 2, 4, 64, 4), (9, 1, 5)),      # ... and a tile a beat
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "r{}c{}s{}k{}d{}-n{}k{}t{}".format(*s[0], *s[1]))
@pytest.mark.parametrize("seed", [1, 2])
def test_random_matmul_with_backpressure(shape, seed):
    (rows, cols, simd, k_max, drain), (n, k, t) = shape
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    w, x = rng.integers(-1, 2, (n, k)), rng.integers(-128, 128, (k, t))
    dut = TernaryArray(rows=rows, cols=cols, simd=simd, k_max=k_max, drain=drain, assertions=True)
    y, _ = run_matmul(dut, w, x, seed, gap=0.3, stall=0.4)
    assert (y == ternary_matmul(w, x)).all()


@pytest.mark.parametrize("case", ["all_plus_127", "all_minus_minus128", "all_zero_weights", "k_max"])
@pytest.mark.parametrize("k", [24, 32])      # 32: K·128 is a power of two, the tightest width
def test_edge_cases_at_the_accumulator_bound(case, k):
    dut = TernaryArray(rows=2, cols=2, simd=4, k_max=k, assertions=True)
    n, t = 3, 3
    w = np.ones((n, k), dtype=np.int64)
    x = np.full((k, t), 127)
    if case == "all_minus_minus128":
        w, x = -w, np.full((k, t), -128)
    elif case == "all_zero_weights":
        w = np.zeros((n, k), dtype=np.int64)
    elif case == "k_max":
        x = np.random.default_rng(0).integers(-128, 128, (k, t))
        w[1] = -1
    y, _ = run_matmul(dut, w, x, seed=0)
    assert (y == ternary_matmul(w, x)).all()
    if case == "all_minus_minus128":          # the largest sum K·128 fits the derived width
        assert y.max() == 128 * k < 2 ** (dut.acc_width - 1)


@pytest.mark.parametrize("rows, cols, simd, drain, n, k, t", [
    (4, 2, 8, 1, 8, 256, 4), (2, 1, 4, 1, 6, 64, 1), (8, 1, 4, 1, 8, 16, 1), (4, 2, 4, 1, 9, 1, 5),
    (4, 1, 2, 1, 12, 6, 1), (8, 1, 4, 2, 24, 8, 1), (8, 1, 32, 8, 40, 192, 1), (8, 1, 4, 8, 24, 4, 1),
    (4, 1, 2, 2, 12, 2, 1)])
def test_cycle_count_matches_the_formula(rows, cols, simd, drain, n, k, t):
    dut = TernaryArray(rows=rows, cols=cols, simd=simd, k_max=max(k, simd), drain=drain)
    rng = np.random.default_rng(5)
    w, x = rng.integers(-1, 2, (n, k)), rng.integers(-128, 128, (k, t))
    y, cycles = run_matmul(dut, w, x, seed=0)
    assert (y == ternary_matmul(w, x)).all()
    assert cycles == dut.cycles(n, k, t)


def test_latency_is_documented():
    dut = TernaryArray(rows=1, cols=1, simd=8, k_max=8)
    _, cycles = run_matmul(dut, np.ones((1, 8), dtype=np.int64), np.ones((8, 1), dtype=np.int64), seed=0)
    assert cycles == 1 + dut.latency     # one beat, then ``latency`` cycles to the result


def test_accumulator_width_matches_the_contract():
    for k in (1, 8, 100, 512, 2560):
        assert TernaryArray(rows=1, cols=1, simd=1, k_max=k).acc_width == acc_bits(k)


@pytest.mark.parametrize("kwargs, message", [
    (dict(rows=0, cols=1, simd=1, k_max=8), r"^rows must be a positive integer, not 0$"),
    (dict(rows=1, cols=1, simd=6, k_max=8), r"^simd must be a power of two \(adder tree\), not 6; 4 or 8 would fit$"),
    (dict(rows=1, cols=1, simd=8, k_max=4), r"^k_max \(4\) must be at least simd \(8\)$"),
    (dict(rows=6, cols=1, simd=8, k_max=8, drain=4),
     r"^drain must divide rows 6, not 4; \[1, 2, 3, 6\] would fit$"),
    (dict(rows=1, cols=1, simd=1, k_max=2 ** 45), r"^k_max 35184372088832 needs a 54-bit accumulator; at most 48 bits are supported \(k_max <= 1099511627775\)$"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TernaryArray(**kwargs)
