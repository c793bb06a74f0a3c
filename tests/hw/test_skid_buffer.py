# amaranth: UnusedElaboratable=no
"""SkidBuffer in the Amaranth simulator: random beats under random input gaps and output stalls
arrive all, once each and in order; with neither, one beat a cycle after one cycle of latency; and
``i.ready`` never follows ``o.ready`` within a cycle (it is a register)."""

import random

import pytest
from amaranth import signed
from amaranth.lib import data

from hw.skid_buffer import SkidBuffer
from hw.testing import run, stream_get, stream_put, transfer_edges

LAYOUT = data.StructLayout({"data": data.ArrayLayout(signed(12), 3), "last": 1})


def beats(rng, count):
    return [{"data": [rng.randrange(-2048, 2048) for _ in range(3)], "last": rng.random() < 0.2}
            for _ in range(count)]


@pytest.mark.parametrize("seed, gap, stall", [(1, 0.3, 0.3), (2, 0.0, 0.6), (3, 0.6, 0.0)])
def test_beats_arrive_once_in_order(seed, gap, stall):
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = SkidBuffer(LAYOUT)
    sent, got = beats(rng, 200), []

    async def put(ctx):
        await stream_put(ctx, dut.i, sent, rng, gap)

    async def get(ctx):
        for payload in await stream_get(ctx, dut.o, len(sent), rng, stall):
            got.append({"data": [int(x) for x in payload.data], "last": bool(payload.last)})

    run(dut, [put, get], max_cycles=2000, vcd_name=f"skid_buffer_{seed}")
    assert got == sent


def test_one_beat_a_cycle_after_one_cycle():
    rng = random.Random(4)
    dut = SkidBuffer(LAYOUT)
    sent = beats(rng, 20)
    count, edges = transfer_edges({"i": dut.i, "o": dut.o})

    async def put(ctx):
        await stream_put(ctx, dut.i, sent)

    async def get(ctx):
        await stream_get(ctx, dut.o, len(sent))

    run(dut, [put, get], max_cycles=200, vcd_name="skid_buffer_rate", background=[count])
    first = edges["i"][0]
    assert edges["i"] == list(range(first, first + len(sent)))
    assert edges["o"] == [e + SkidBuffer.latency for e in edges["i"]]


def test_input_ready_is_a_register():
    rng = random.Random(5)
    dut = SkidBuffer(LAYOUT)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for _ in range(100):
            ctx.set(dut.i.payload, beats(rng, 1)[0])
            ctx.set(dut.o.ready, 0)
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)
            seen.append(before == ctx.get(dut.i.ready))
            ctx.set(dut.o.ready, rng.random() < 0.5)
            await ctx.tick()

    run(dut, [bench], max_cycles=200, vcd_name="skid_buffer_ready")
    assert all(seen)
