# amaranth: UnusedElaboratable=no
"""HeadQuantizer in the Amaranth simulator, bit for bit against model.integer.quantize_heads."""

import random

import numpy as np
import pytest

from hw.head_quantizer import HeadQuantizer
from hw.quantizer import QUOTIENT_BITS
from hw.testing import run, stream_get, stream_put, transfer_edges
from model import numerics as nx
from model.integer import quantize_heads


def run_heads(dut, heads, acc_scale, seed, gap=0.0, stall=0.0):
    rng = random.Random(seed)
    lanes, beats = dut.lanes, dut.head_dim // dut.lanes
    codes, scales = [], []

    async def put(ctx):
        ctx.set(dut.acc_scale, {"mant": int(acc_scale[0]), "exp": int(acc_scale[1])})
        for head in heads:
            rows = np.asarray(head).reshape(-1, lanes)
            await stream_put(ctx, dut.i, [{"data": r.tolist(), "last": i == beats - 1}
                                          for i, r in enumerate(rows)], rng, gap)

    async def get_codes(ctx):
        for _ in heads:
            got = await stream_get(ctx, dut.o, beats, rng, stall)
            assert [bool(p.last) for p in got] == [False] * (beats - 1) + [True]
            codes.append(np.array([[int(v) for v in p.data] for p in got]).reshape(-1))

    async def get_scales(ctx):
        for _ in heads:
            (s,) = await stream_get(ctx, dut.scale, 1, rng, stall)
            scales.append((int(s.mant), int(s.exp), bool(s.invalid)))

    run(dut, [put, get_codes, get_scales], max_cycles=len(heads) * (8 * beats + 120) + 100,
        vcd_name=f"head_quantizer_l{lanes}_{seed}")
    return np.stack(codes), scales


def check(heads, acc_scale, codes, scales):
    want_codes, (mants, exps) = quantize_heads(np.asarray(heads), acc_scale)
    assert np.array_equal(codes, want_codes)
    assert scales == [(int(a), int(b), False) for a, b in zip(mants, exps)]


@pytest.mark.parametrize("width, lanes, head_dim, quantizers, seed", [
    (18, 1, 8, 1, 1), (24, 4, 16, 1, 2), (20, 1, 1, 1, 3), (23, 2, 32, 2, 4), (18, 1, 4, 2, 5),
    (8, 2, 8, 1, 6), (40, 2, 8, 1, 7)])
def test_random_heads_with_backpressure(width, lanes, head_dim, quantizers, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = HeadQuantizer(width=width, lanes=lanes, head_dim=head_dim, quantizers=quantizers)
    lim = 1 << (width - 1)
    heads = [rng.integers(-lim, lim, head_dim) >> int(rng.integers(0, width - 1)) for _ in range(8)]
    heads += [np.zeros(head_dim, dtype=np.int64), np.full(head_dim, -lim)]
    acc_scale = nx.scale_from_float(float(rng.uniform(1e-6, 1e-2)))
    codes, scales = run_heads(dut, heads, acc_scale, seed, gap=0.3, stall=0.3)
    check(heads, acc_scale, codes, scales)


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 1, "head_dim": 8}, "width must be an integer from 2 to 48, not 1"),
    ({"width": 16, "head_dim": 0}, "head_dim must be an integer"),
    ({"width": 16, "lanes": 65, "head_dim": 65}, "lanes must be an integer from 1 to 64, not 65"),
    ({"width": 16, "head_dim": 8, "quantizers": 3}, r"quantizers must be one of \(1, 2\), not 3"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HeadQuantizer(**kwargs)


@pytest.mark.parametrize("lanes, head_dim", [(2, 8), (6, 6)])
def test_latency_and_scale_cycles(lanes, head_dim):
    dut = HeadQuantizer(width=20, lanes=lanes, head_dim=head_dim)
    beats = head_dim // lanes
    count, edges = transfer_edges({"last_in": (dut.i, "last"), "codes": dut.o, "scale": dut.scale})

    async def put(ctx):
        ctx.set(dut.acc_scale, {"mant": 1 << 15, "exp": 0})
        await stream_put(ctx, dut.i, [{"data": [i + 1] * lanes, "last": i == beats - 1}
                                      for i in range(beats)])

    async def get_codes(ctx):
        await stream_get(ctx, dut.o, beats)

    async def get_scale(ctx):
        await stream_get(ctx, dut.scale, 1)

    run(dut, [put, get_codes, get_scale], background=[count], max_cycles=200,
        vcd_name=f"head_quantizer_latency_l{lanes}")
    (last_in,), first_code, (scale,) = edges["last_in"], edges["codes"][0], edges["scale"]
    assert first_code - last_in == dut.latency
    assert scale - first_code == dut.scale_cycles()


def head_period(quantizers, lanes=2, head_dim=32, heads=6):
    """Clock edges between heads' first codes, heads offered a beat a cycle and codes and scales
    taken at once (as the engine takes them: a head's scale after its codes)."""
    dut = HeadQuantizer(width=20, lanes=lanes, head_dim=head_dim, quantizers=quantizers)
    beats = head_dim // lanes
    count, edges = transfer_edges({"first": dut.o})

    async def put(ctx):
        ctx.set(dut.acc_scale, {"mant": 1 << 15, "exp": 0})
        for h in range(heads):
            await stream_put(ctx, dut.i, [{"data": [h + i + 1] * lanes, "last": i == beats - 1}
                                          for i in range(beats)])

    async def get(ctx):
        for _ in range(heads):
            await stream_get(ctx, dut.o, beats)
            await stream_get(ctx, dut.scale, 1)

    run(dut, [put, get], background=[count], max_cycles=heads * 80 + 100,
        vcd_name=f"head_quantizer_period_{quantizers}")
    firsts = edges["first"][::beats]
    return [b - a for a, b in zip(firsts, firsts[1:])]


def test_two_quantizers_keep_up_with_a_beat_a_cycle():
    # one AbsmaxQuantizer divides a head only once the previous head's codes are out; two take the
    # heads in turn, so a head leaves every beats + 2 cycles (its codes, the scale taken, the
    # next head's peak latched)
    one, two = head_period(1), head_period(2)
    print("periods", one, two)
    assert max(two[1:]) == 16 + 2
    assert min(one[1:]) >= 16 + 2 + QUOTIENT_BITS // 2      # codes, then the next head's division
