"""Amaranth-simulator helpers shared by the hw tests and benchmarks: stream drivers with random gaps
and stalls, and a runner with a cycle budget (an unbounded wait would hang CI)."""

import os
import random
from pathlib import Path

from amaranth.sim import Simulator


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
        path = Path("build/vcd") / f"{vcd_name}.vcd"
        path.parent.mkdir(parents=True, exist_ok=True)
        with sim.write_vcd(str(path)):
            sim.run()
    else:
        sim.run()
