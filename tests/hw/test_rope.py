# amaranth: UnusedElaboratable=no
"""Rope in the Amaranth simulator, bit for bit against model.numerics.rope_rotate."""

import random

import numpy as np
import pytest

from hw.rope import Rope
from hw.testing import run, stream_get, stream_put
from model import numerics as nx


def run_heads(dut, heads, seed, gap=0.0, stall=0.0):
    """Each head is (values [head_dim], position); returns the rotated heads and the edges of each
    head's first ``b`` input transfer (beat ``beats/2``), last input transfer, first output
    offered and last output transfer."""
    rng = random.Random(seed)
    outputs, edges = [], {"first_b": [], "last_in": [], "first_out": [], "last_out": []}
    lanes = dut.lanes
    d = dut.head_dim // lanes          # beats a head

    async def count(ctx):
        edge, taken, offered = 0, 0, 0
        async for _, _, iv, ir, ov, orr in ctx.tick().sample(dut.i.valid, dut.i.ready,
                                                            dut.o.valid, dut.o.ready):
            if iv and ir:
                taken += 1
                if taken % d == d // 2 + 1:
                    edges["first_b"].append(edge)
                if taken % d == 0:
                    edges["last_in"].append(edge)
            if ov and offered % d == 0 and len(edges["first_out"]) == offered // d:
                edges["first_out"].append(edge)
            if ov and orr:
                offered += 1
                if offered % d == 0:
                    edges["last_out"].append(edge)
            edge += 1

    async def put(ctx):
        for index, (values, position) in enumerate(heads):
            ctx.set(dut.position, position)
            await stream_put(ctx, dut.i, np.asarray(values).reshape(d, lanes).tolist(), rng, gap)
            while len(outputs) < (index + 1) * dut.head_dim:
                await ctx.tick()    # the position holds until the head is out

    async def get(ctx):
        for _ in heads:
            got = await stream_get(ctx, dut.o, d, rng, stall)
            assert [bool(p.last) for p in got] == [False] * (d - 1) + [True]
            outputs.extend(int(v) for p in got for v in p.data)

    run(dut, [put, get], background=[count], max_cycles=len(heads) * 12 * d + 100,
        vcd_name=f"rope_d{dut.head_dim}_l{lanes}_{seed}")
    return np.array(outputs).reshape(len(heads), dut.head_dim), edges


def expected(dut, heads, theta):
    cos, sin = nx.rope_int_tables(dut.head_dim, theta, dut.positions)
    return np.stack([nx.rope_rotate(values, cos[p], sin[p]) for values, p in heads])


@pytest.mark.parametrize("width, head_dim, positions, theta, lanes, seed", [
    (16, 8, 32, 10000.0, 1, 1), (24, 12, 40, 500000.0, 1, 2), (20, 32, 256, 10000.0, 1, 3),
    (20, 32, 256, 10000.0, 2, 4), (16, 12, 10, 10000.0, 3, 5), (16, 8, 8, 10000.0, 4, 6)])
def test_random_heads_with_backpressure(width, head_dim, positions, theta, lanes, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = Rope(width=width, head_dim=head_dim, positions=positions, theta=theta, lanes=lanes)
    lim = 1 << (width - 1)
    heads = [(rng.integers(-lim, lim, head_dim), int(rng.integers(0, positions))) for _ in range(8)]
    heads.append((np.full(head_dim, -lim), positions - 1))       # the extremes
    heads.append((np.array([-lim, lim - 1] * (head_dim // 2)), 0))
    got, _ = run_heads(dut, heads, seed, gap=0.3, stall=0.3)
    assert np.array_equal(got, expected(dut, heads, theta))


@pytest.mark.parametrize("head_dim, lanes", [(4, 1), (16, 1), (16, 2)])
def test_latency(head_dim, lanes):
    """The first output ``latency`` after the first ``b`` beat (before the head is all in), the
    last ``latency + beats/2`` after the last input: heads a beat a cycle, the output taken at
    once."""
    dut = Rope(width=12, head_dim=head_dim, positions=8, theta=10000.0, lanes=lanes)
    rng = np.random.default_rng(3)
    print("seed 3")
    heads = [(rng.integers(-2000, 2000, head_dim), 3), (rng.integers(-2000, 2000, head_dim), 7)]
    got, edges = run_heads(dut, heads, seed=0)
    assert np.array_equal(got, expected(dut, heads, 10000.0))
    assert [o - i for i, o in zip(edges["first_b"], edges["first_out"])] == [dut.latency] * 2
    beats = head_dim // lanes
    assert [o - i for i, o in zip(edges["last_in"], edges["last_out"])] == [dut.latency + beats // 2] * 2


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 16, "head_dim": 7, "positions": 8, "theta": 1e4}, "head_dim must be even"),
    ({"width": 16, "head_dim": 8, "positions": 0, "theta": 1e4}, "positions must be an integer"),
    ({"width": 16, "head_dim": 8, "positions": 8, "theta": 0.0}, "theta must be positive"),
    ({"width": 16, "head_dim": 12, "positions": 8, "theta": 1e4, "lanes": 4},
     "lanes must divide head_dim/2 = 6, not 4"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rope(**kwargs)
