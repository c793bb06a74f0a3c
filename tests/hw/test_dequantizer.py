# amaranth: UnusedElaboratable=no
"""Dequantizer in the Amaranth simulator, bit for bit against saturate(addend + apply_scale(...))."""

import random

import numpy as np
import pytest

from hw.dequantizer import Dequantizer
from hw.testing import run, stream_get, stream_put
from model import numerics as nx


def run_vectors(dut, vectors, seed, gap=0.0, stall=0.0):
    """Each vector is (x, addend, scale), a multiple of lanes long; returns the outputs and the
    edge of the first input transfer and of the first output offered."""
    lanes = dut.lanes
    rng = random.Random(seed)
    outputs, edges = [], {"i": [], "o": []}

    async def count(ctx):
        edge = 0
        async for _, _, iv, ir, ov in ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid):
            if iv and ir:
                edges["i"].append(edge)
            if ov:
                edges["o"].append(edge)
            edge += 1

    async def put(ctx):
        # every vector's beats right after the previous vector's: each beat carries its scale
        for x, addend, scale in vectors:
            rows, adds = np.asarray(x).reshape(-1, lanes), np.asarray(addend).reshape(-1, lanes)
            scale = {"mant": int(scale[0]), "exp": int(scale[1])}
            await stream_put(ctx, dut.i, [{"data": r.tolist(), "addend": a.tolist(), "scale": scale,
                                           "last": i == len(rows) - 1}
                                          for i, (r, a) in enumerate(zip(rows, adds))], rng, gap)

    async def get(ctx):
        for x, _, _ in vectors:
            outputs.extend(await stream_get(ctx, dut.o, len(x) // lanes, rng, stall))

    run(dut, [put, get], background=[count], max_cycles=20 * sum(len(v[0]) for v in vectors) + 100,
        vcd_name=f"dequantizer_l{lanes}_{seed}")
    values = np.array([[int(v) for v in p.data] for p in outputs]).reshape(-1)
    return values, edges


def expected(vectors, frac, out_bits):
    return np.concatenate([nx.saturate(np.asarray(addend) + nx.apply_scale(x, scale, frac), out_bits)
                           for x, addend, scale in vectors])


def random_vector(rng, n, width, out_bits, frac):
    x = rng.integers(-(1 << (width - 1)), 1 << (width - 1), n)
    x[rng.integers(0, n)] = -(1 << (width - 1))
    # Exponents from far right shifts to left shifts that stay inside int64 in numerics.
    exp = int(rng.integers(-frac - width - 20, min(-frac + 62 - width - 17, -frac + out_bits + 2)))
    scale = (int(rng.integers(1 << 15, 1 << 16)), exp)
    addend = rng.integers(-(1 << (out_bits - 1)), 1 << (out_bits - 1), n) >> int(rng.integers(0, out_bits))
    return x, addend, scale


@pytest.mark.parametrize("width, lanes, units, seed",
                         [(24, 1, 1, 1), (8, 4, 4, 2), (40, 2, 2, 3), (24, 4, 2, 5), (16, 6, 2, 6), (12, 4, 1, 7)])
def test_random_vectors_with_backpressure(width, lanes, units, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = Dequantizer(width=width, lanes=lanes, units=units)
    vectors = [random_vector(rng, 8 * lanes, width, 32, 16) for _ in range(16)]
    got, _ = run_vectors(dut, vectors, seed, gap=0.3, stall=0.3)
    assert np.array_equal(got, expected(vectors, 16, 32))


def test_edge_cases():
    """Ties round up; saturation both ways; zero scale; a clamped left shift; another format."""
    dut = Dequantizer(width=16, lanes=2, frac=8, out_bits=20)
    half = (1 << 15, -15 - 8 - 1)           # 0.5 · 2^-8: x/2 in Q.8 units, ties rounded up
    vectors = [
        (np.array([1, -1, 3, -3]), np.zeros(4, dtype=np.int64), half),
        (np.array([32767, -32768, 32767, -32768]), np.array([0, 0, (1 << 19) - 1, -(1 << 19)]),
         (0xFFFF, -8)),                     # x · 0xFFFF, then saturated at ±2^19
        (np.array([5, -5, 0, 7]), np.array([1, 2, 3, 4]), (0, 0)),
        (np.array([1, -1, 0, 2]), np.zeros(4, dtype=np.int64), (1 << 15, 30)),   # left 22 > 21
    ]
    got, _ = run_vectors(dut, vectors, seed=0)
    assert np.array_equal(got, expected(vectors, 8, 20))
    assert got[:4].tolist() == [1, 0, 2, -1]


def test_saturation_boundaries_exhaustively():
    """Every 4-bit x with the extreme and middle addends, small and normalized mantissas, at every
    shift from 10 left to 24 right (both beyond where the window's offset is clamped), into 6 bits:
    products that just fit, just overflow, and overflow far, both ways."""
    dut = Dequantizer(width=4, lanes=1, frac=0, out_bits=6)
    addends = (-32, -31, -1, 0, 1, 31)
    x = np.repeat(np.arange(-8, 8), len(addends))
    addend = np.tile(addends, 16)
    vectors = [(x, addend, (mant, exp)) for mant in (1, 3, 1 << 15, 0xFFFF) for exp in range(-24, 11)]
    got, _ = run_vectors(dut, vectors, seed=0)
    assert np.array_equal(got, expected(vectors, 0, 6))


@pytest.mark.parametrize("lanes, units", [(1, 1), (4, 2), (4, 1)])
def test_latency(lanes, units):
    dut = Dequantizer(width=8, lanes=lanes, units=units)
    vectors = [(np.arange(4 * lanes), np.zeros(4 * lanes, dtype=np.int64), (1 << 15, -15))]
    got, edges = run_vectors(dut, vectors, seed=0)
    assert np.array_equal(got, expected(vectors, 16, 32))
    assert edges["o"][0] - edges["i"][0] == dut.latency
    # a beat taken every lanes / units cycles
    assert edges["i"] == list(range(edges["i"][0], edges["i"][0] + 4 * dut.parts, dut.parts))


def test_a_scale_a_beat_back_to_back():
    """One-beat vectors of a different scale each, offered every cycle: one result a cycle."""
    rng = np.random.default_rng(4)
    print("seed 4")
    dut = Dequantizer(width=24, lanes=2)
    vectors = [random_vector(rng, 2, 24, 32, 16) for _ in range(24)]
    got, edges = run_vectors(dut, vectors, seed=4)
    assert np.array_equal(got, expected(vectors, 16, 32))
    assert edges["i"] == list(range(edges["i"][0], edges["i"][0] + 24))


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 1}, "width must be an integer from 2 to 48, not 1"),
    ({"width": 8, "out_bits": 64}, "out_bits must be an integer from 2 to 48, not 64"),
    ({"width": 8, "lanes": 6, "units": 4}, r"^units must divide lanes 6, not 4; \[1, 2, 3, 6\] would$"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Dequantizer(**kwargs)
