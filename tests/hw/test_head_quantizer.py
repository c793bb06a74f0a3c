# amaranth: UnusedElaboratable=no
"""HeadQuantizer in the Amaranth simulator, bit for bit against model.integer.quantize_heads."""

import random

import numpy as np
import pytest

from hw.head_quantizer import HeadQuantizer
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


@pytest.mark.parametrize("width, lanes, head_dim, seed", [(18, 1, 8, 1), (24, 4, 16, 2), (20, 1, 1, 3)])
def test_random_heads_with_backpressure(width, lanes, head_dim, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = HeadQuantizer(width=width, lanes=lanes, head_dim=head_dim)
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
