# amaranth: UnusedElaboratable=no
"""UartTx into UartRx, bit for bit: random bytes at several divisors, a framing error, an overrun;
the divisor checks."""

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring

from hw.testing import run, stream_get, stream_put
from hw.uart import FRAME_BITS, UartRx, UartTx, divisor_for


class Loopback(wiring.Component):
    def __init__(self, divisor):
        self.tx, self.rx = UartTx(divisor), UartRx(divisor)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        return m


@pytest.mark.parametrize("divisor", [4, 5, 16])
def test_loopback(divisor, rng):
    seed = int(rng.integers(1 << 32))   # the rng fixture prints its own seed
    payloads = [random.Random(seed).randrange(256) for _ in range(24)]
    dut, cycles = Loopback(divisor), []

    async def put(ctx):
        await stream_put(ctx, dut.tx.i, payloads)

    async def get(ctx):
        received = await stream_get(ctx, dut.rx.o, len(payloads), random.Random(seed), stall=0.3)
        assert [int(b) for b in received] == payloads

    async def count(ctx):
        async for _, _, overrun, framing in ctx.tick().sample(dut.rx.overrun, dut.rx.framing):
            assert not overrun and not framing
            cycles.append(1)

    run(dut, [put, get], background=[count], max_cycles=FRAME_BITS * divisor * (len(payloads) + 4),
        vcd_name=f"uart_loopback_{divisor}")
    # back to back: one byte every FRAME_BITS · divisor cycles
    assert len(cycles) <= FRAME_BITS * divisor * (len(payloads) + 1) + 8


def drive_bits(divisor, bits):
    """A testbench driving ``rx`` with ``bits`` (each ``divisor`` cycles), then idle high."""
    async def drive(ctx, dut):
        for bit in bits:
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(divisor)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * divisor)
    return drive


def frame_bits(byte, stop=1):
    return [0] + [byte >> i & 1 for i in range(8)] + [stop]


def test_framing_error_and_recovery():
    divisor = 6
    dut, events = UartRx(divisor), {"framing": 0, "bytes": []}
    drive = drive_bits(divisor, frame_bits(0x3C, stop=0) + [0] * 12 + [1] * 3 + frame_bits(0xA5))

    async def bench(ctx):
        await drive(ctx, dut)

    async def watch(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, framing, valid, payload in ctx.tick().sample(dut.framing, dut.o.valid,
                                                                     dut.o.payload):
            events["framing"] += framing
            if valid:
                events["bytes"].append(int(payload))

    run(dut, [bench], background=[watch], max_cycles=1000, vcd_name="uart_framing")
    assert events == {"framing": 1, "bytes": [0xA5]}


def test_overrun_keeps_the_first_byte():
    divisor = 4
    dut, events = UartRx(divisor), {"overrun": 0}
    drive = drive_bits(divisor, frame_bits(0x11) + frame_bits(0x22) + frame_bits(0x33))

    async def bench(ctx):
        await drive(ctx, dut)               # nobody takes the bytes meanwhile
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        assert not ctx.get(dut.o.valid)

    async def watch(ctx):
        async for _, _, overrun in ctx.tick().sample(dut.overrun):
            events["overrun"] += overrun

    run(dut, [bench], background=[watch], max_cycles=1000, vcd_name="uart_overrun")
    assert events["overrun"] == 2


def test_parameters():
    with pytest.raises(ValueError, match="off by"):
        divisor_for(25e6, 3_000_000)
    assert divisor_for(48e6, 3_000_000) == 16
    assert divisor_for(12e6, 115_200) == 104
    with pytest.raises(ValueError, match="at least 4 cycles"):
        divisor_for(1e6, 500_000)
    with pytest.raises(ValueError, match="divisor must be an integer of at least 4"):
        UartTx(3)
