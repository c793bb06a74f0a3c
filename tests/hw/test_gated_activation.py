# amaranth: UnusedElaboratable=no
"""GatedActivation in the Amaranth simulator, bit for bit against model.integer.gated_activation."""

import random

import numpy as np
import pytest

from hw.gated_activation import GatedActivation
from hw.testing import run, stream_get, stream_put
from model import numerics as nx
from model.integer import gated_activation


def as_scale(s):
    return {"mant": int(s[0]), "exp": int(s[1])}


def run_vectors(dut, vectors, seed, gap=0.0, stall=0.0):
    """Each vector is (gate, up, gate_scale, up_scale); returns per vector (values, scale) and the
    edges of each vector's first input transfer and last output transfer. A vector longer than the
    unit's buffer gives the beats it kept."""
    lanes = dut.lanes
    rng = random.Random(seed)
    results, edges = [], {"first_in": [], "last_out": []}

    async def count(ctx):
        edge, first = 0, True
        async for _, _, iv, ir, il, ov, orr, ol in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload.last, dut.o.valid, dut.o.ready, dut.o.payload.last):
            if iv and ir:
                if first:
                    edges["first_in"].append(edge)
                first = bool(il)
            if ov and orr and ol:
                edges["last_out"].append(edge)
            edge += 1

    async def put(ctx):
        for index, (gate, up, gate_scale, up_scale) in enumerate(vectors):
            ctx.set(dut.gate_scale, as_scale(gate_scale))
            ctx.set(dut.up_scale, as_scale(up_scale))
            g, u = np.asarray(gate).reshape(-1, lanes), np.asarray(up).reshape(-1, lanes)
            await stream_put(ctx, dut.i, [{"gate": a.tolist(), "up": b.tolist(), "last": i == len(g) - 1}
                                          for i, (a, b) in enumerate(zip(g, u))], rng, gap)
            while len(results) <= index:
                await ctx.tick()    # the scales hold until the vector is out

    async def get(ctx):
        for gate, *_ in vectors:
            (scale,) = await stream_get(ctx, dut.scale, 1, rng, stall)
            beats = await stream_get(ctx, dut.o, min(len(gate) // lanes, dut.depth), rng, stall)
            assert [bool(p.last) for p in beats] == [False] * (len(beats) - 1) + [True]
            values = np.array([[int(v) for v in p.data] for p in beats]).reshape(-1)
            results.append((values, (int(scale.mant), int(scale.exp), bool(scale.invalid))))

    run(dut, [put, get], background=[count],
        max_cycles=sum(dut.cycles(len(v[0]) // lanes) + 20 * len(v[0]) for v in vectors) + 100,
        vcd_name=f"gated_activation_l{lanes}_{seed}")
    return results, edges


def check(results, vectors, kind="relu2"):
    for index, ((values, scale), (gate, up, gate_scale, up_scale)) in enumerate(zip(results, vectors)):
        want, want_scale = gated_activation(np.asarray(gate), gate_scale, np.asarray(up), up_scale, kind)
        assert np.array_equal(values, want), f"vector {index}: values differ"
        assert scale == (int(want_scale[0]), int(want_scale[1]), False), f"vector {index}: scale differs"


def random_vector(rng, n, width, kind="relu2"):
    bits_gate, bits_up = (int(b) for b in rng.integers(2, width + 1, 2))
    gate = rng.integers(-(1 << (bits_gate - 1)), 1 << (bits_gate - 1), n)
    up = rng.integers(-(1 << (bits_up - 1)), 1 << (bits_up - 1), n)
    scales = [(int(rng.integers(1 << 15, 1 << 16)), int(rng.integers(-60, -10))) for _ in range(2)]
    if kind == "silu":    # real gate values of a few units, across the sigmoid table and beyond
        peak = max(1, int(np.abs(gate).max()))
        scales[0] = nx.scale_from_float(float(rng.uniform(1, 40)) / peak)
    return gate, up, *scales


@pytest.mark.parametrize("kind, width, lanes, seed", [
    ("relu2", 20, 1, 1), ("relu2", 16, 4, 2), ("relu2", 24, 2, 3), ("relu2", 17, 8, 6), ("silu", 20, 1, 4),
    ("silu", 16, 4, 5)])
def test_random_vectors_with_backpressure(kind, width, lanes, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = GatedActivation(width=width, lanes=lanes, max_length=16 * lanes, kind=kind)
    vectors = [random_vector(rng, 16 * lanes, width, kind) for _ in range(6)]
    results, _ = run_vectors(dut, vectors, seed, gap=0.3, stall=0.3)
    check(results, vectors, kind)


def test_edge_cases():
    """No positive gate (all products 0); the extremes; small values (no shift)."""
    n, lim = 8, 1 << 19
    s = (1 << 15, -30)
    vectors = [(np.full(n, -5), np.arange(n), s, s),
               (np.full(n, -lim), np.full(n, -lim), s, s),
               (np.full(n, lim - 1), np.array([-lim, lim - 1] * (n // 2)), s, s),
               (np.arange(n) - 3, np.arange(n) - 4, s, (0xFFFF, -45))]
    dut = GatedActivation(width=20, lanes=2, max_length=n)
    results, _ = run_vectors(dut, vectors, seed=0)
    check(results, vectors)


@pytest.mark.parametrize("kind, gate_scale, up_scale", [
    ("relu2", (1 << 14, -30), (1 << 15, -30)),      # unnormalized: the sums would not be exact
    ("relu2", (1 << 15, -30), (3 << 13, -30)),
    ("silu", (1 << 14, -12), (1 << 15, -30)),
    ("relu2", (1 << 15, -2000), (1 << 15, -30)),    # gate_scale² under the exponent's range
    ("relu2", (1 << 15, -30), (1 << 15, 2046)),     # up_scale · 2^e_up over it (e_up 3)
])
def test_scales_out_of_the_contract_are_invalid(kind, gate_scale, up_scale):
    n = 4
    vectors = [(np.arange(n) * 40000 + 1, np.full(n, 1 << 19), gate_scale, up_scale)]
    dut = GatedActivation(width=21, lanes=2, max_length=n, kind=kind)
    ((_, (_, _, invalid)),), _ = run_vectors(dut, vectors, seed=0)
    assert invalid


@pytest.mark.parametrize("kind, lanes", [("relu2", 4), ("silu", 2)])
def test_beats_past_max_length_are_dropped(kind, lanes):
    """Beats past ``max_length`` are dropped and do not count towards the shifts (the last one has
    the largest gate and up): the products and scale are those of the kept elements; the next
    vector starts afresh."""
    rng = np.random.default_rng(11)
    n = 4 * lanes
    dut = GatedActivation(width=16, lanes=lanes, max_length=n, kind=kind)
    first, second = (random_vector(rng, n, 12, kind) for _ in range(2))
    gate, up, gate_scale, up_scale = first
    long = (np.concatenate([gate, np.full(lanes, (1 << 15) - 1)]),
            np.concatenate([up, np.full(lanes, -(1 << 15))]), gate_scale, up_scale)
    results, _ = run_vectors(dut, [long, second], seed=3, gap=0.2, stall=0.2)
    check(results, [first, second], kind)


def test_silu_table_edges():
    """SiLU inputs on both sides of each end of the sigmoid table and of its middle (a gate scale
    of 2^-10 makes the Q.10 input the gate itself), where the index is clamped or taken as is."""
    edges = [16 * i + d for i in (-1025, -1024, -1, 0, 1023, 1024) for d in (-1, 0, 1, 15)]
    gate = np.array(edges + [0] * (-len(edges) % 4))
    vectors = [(gate, np.arange(len(gate)) - 7, (1 << 15, -25), (1 << 15, -20))]
    dut = GatedActivation(width=18, lanes=2, max_length=len(gate), kind="silu")
    results, _ = run_vectors(dut, vectors, seed=7, gap=0.2, stall=0.2)
    check(results, vectors, "silu")


@pytest.mark.parametrize("kind, lanes", [("relu2", 2), ("silu", 2), ("relu2", 8), ("silu", 8)])
def test_cycles(kind, lanes):
    """The cycle count, back to back; the second vector's largest gate is its last element, so
    relu²'s square waits for the last beat to leave the comparator tree (3 stages at 8 lanes)."""
    rng = np.random.default_rng(5)
    n = 6 * lanes
    dut = GatedActivation(width=16, lanes=lanes, max_length=n, kind=kind)
    vectors = [random_vector(rng, n, 16, kind) for _ in range(2)]
    gate, up, gate_scale, up_scale = vectors[1]
    gate = np.where(np.arange(n) == n - 1, (1 << 15) - 1, np.minimum(gate, 1 << 10))
    vectors[1] = (gate, up, gate_scale, up_scale)
    results, edges = run_vectors(dut, vectors, seed=0)
    check(results, vectors, kind)
    assert [o - i for i, o in zip(edges["first_in"], edges["last_out"])] == [dut.cycles(6)] * 2


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 16, "max_length": 8, "kind": "gelu"}, "kind must be one of \\['relu2', 'silu'\\], not 'gelu'"),
    ({"width": 40, "max_length": 8}, "width must be an integer from 2 to 32, not 40"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GatedActivation(**kwargs)
