"""Amaranth-simulator helpers shared by the hw tests and benchmarks: stream drivers with random gaps
and stalls, a runner with a cycle budget (an unbounded wait would hang CI), and a TernaryArray matmul
driver that measures cycles."""

import os
import random

import numpy as np
from amaranth.sim import Simulator

from hw.ternary_array import assemble, tile_beats
from model import numerics as nx
from model import paths


async def stream_put(ctx, stream, payloads, rng: random.Random | None = None, gap: float = 0.0):
    """Send each payload; with ``rng``, idle a cycle before a transfer with probability ``gap``."""
    for payload in payloads:
        while rng is not None and rng.random() < gap:
            await ctx.tick()
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count: int, rng: random.Random | None = None, stall: float = 0.0):
    """Receive ``count`` payloads (as Python values); with ``rng``, hold ``ready`` low at random."""
    received = []
    while len(received) < count:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if ready and valid:
            received.append(payload)
    ctx.set(stream.ready, 0)
    return received


def dequantized(beats) -> np.ndarray:
    """Received beats of a Dequantizer input (``data`` with the beat's ``scale``: the embedding row,
    an attention head's output) as the engine's Dequantizer makes them, into the residual format:
    ``saturate(apply_scale(data, scale, 16), 32)``, concatenated."""
    return np.concatenate([nx.saturate(nx.apply_scale(np.array([int(v) for v in p.data]),
                                                      (int(p.scale.mant), int(p.scale.exp)),
                                                      nx.RES_FRAC), nx.RES_BITS) for p in beats])


def transfer_edges(streams: dict):
    """``(count, edges)``: ``count`` is a background testbench that appends to ``edges[name]`` the
    index of every clock edge (sampled at the edge) that transfers on ``streams[name]``, a stream
    or ``(stream, "last")`` for only the transfers whose payload has ``last`` set."""
    edges = {name: [] for name in streams}
    watched = [(name, *(s if isinstance(s, tuple) else (s, None))) for name, s in streams.items()]
    signals = [signal for _, stream, last in watched
               for signal in (stream.valid, stream.ready, stream.payload.last if last else stream.valid)]

    async def count(ctx):
        edge = 0
        async for _, _, *values in ctx.tick().sample(*signals):
            for i, (name, _, _) in enumerate(watched):
                if all(values[3 * i:3 * i + 3]):
                    edges[name].append(edge)
            edge += 1
    return count, edges


def run(dut, benches, *, max_cycles: int, vcd_name: str, background=()):
    """Simulate ``dut`` with the testbench coroutines (and ``background`` ones that never end);
    fail after ``max_cycles``.

    With ``TRITIUM_VCD=1`` a waveform is written to ``build/vcd/<vcd_name>.vcd``.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    for bench in background:
        sim.add_testbench(bench, background=True)

    async def watchdog(ctx):
        for _ in range(max_cycles):
            await ctx.tick()
        raise AssertionError(f"simulation did not finish within {max_cycles} cycles")
    sim.add_testbench(watchdog, background=True)
    if os.environ.get("TRITIUM_VCD"):
        path = paths.BUILD / "vcd" / f"{vcd_name}.vcd"
        path.parent.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(path)):
            sim.run()
    else:
        sim.run()


def run_matmul(dut, weights, acts, seed, gap=0.0, stall=0.0):
    """Drive ``weights · acts`` through a TernaryArray ``dut`` with random input gaps and output
    stalls; return Y and the cycles from the first beat's transfer to the last result's, inclusive."""
    n, t = weights.shape[0], acts.shape[1]
    beats = tile_beats(weights, acts, dut.rows, dut.cols, dut.simd)
    transfers = -(-n // dut.rows) * -(-t // dut.cols) * dut.groups
    rng = random.Random(seed)
    outputs, edges = [], {"x": [], "o": []}

    async def count(ctx):
        """Index of every clock edge that transfers on ``x`` and on ``o`` (sampled at the edge)."""
        edge = 0
        async for _, _, xv, xr, ov, orr in ctx.tick().sample(dut.x.valid, dut.x.ready,
                                                            dut.o.valid, dut.o.ready):
            if xv and xr:
                edges["x"].append(edge)
            if ov and orr:
                edges["o"].append(edge)
            edge += 1

    async def put_w(ctx):
        await stream_put(ctx, dut.w, [b[0] for b in beats], rng, gap)

    async def put_x(ctx):
        await stream_put(ctx, dut.x, [{"data": b[1], "last": b[2]} for b in beats], rng, gap)

    async def get(ctx):
        got = await stream_get(ctx, dut.o, transfers, rng, stall)
        outputs.extend((int(p.row), [[int(v) for v in row] for row in p.data]) for p in got)
        assert [bool(p.last) for p in got] == [(i % dut.groups) == dut.groups - 1 for i in range(transfers)]

    run(dut, [put_w, put_x, get], background=[count], max_cycles=20 * (len(beats) + transfers) + 100,
        vcd_name=f"ternary_array_r{dut.rows}c{dut.cols}s{dut.simd}_{seed}")
    # cycles from the first beat's transfer to the last result's transfer, both included
    return assemble(outputs, n, t, dut.rows, dut.cols), edges["o"][-1] - edges["x"][0] + 1
