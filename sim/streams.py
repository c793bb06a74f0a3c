"""cocotb drivers for Amaranth ``lib.stream`` ports as flattened by ``verilog.convert``:
``<name>__valid``, ``<name>__ready``, ``<name>__payload``. Payloads are packed and unpacked with the
component's own ``lib.data`` layouts, never with hand-written bit offsets."""

import random

from cocotb.triggers import ReadOnly, RisingEdge


async def reset(dut, cycles: int = 2):
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


class _StreamPort:
    def __init__(self, dut, name: str, layout, rng: random.Random):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.layout, self.rng = layout, rng


class StreamSource(_StreamPort):
    """Drives ``<name>__valid/payload``; idles before a transfer with probability ``gap``."""

    def __init__(self, dut, name: str, layout, rng: random.Random, gap: float = 0.0):
        super().__init__(dut, name, layout, rng)
        self.gap = gap
        self.valid.value = 0

    async def send(self, items):
        for item in items:
            while self.rng.random() < self.gap:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.payload.value = self.layout.const(item).as_bits()
            self.valid.value = 1
            await ReadOnly()
            while not self.ready.value:
                await RisingEdge(self.clk)
                await ReadOnly()
            await RisingEdge(self.clk)
            self.valid.value = 0


class StreamSink(_StreamPort):
    """Holds ``<name>__ready`` low with probability ``stall``; returns payloads as layout views."""

    def __init__(self, dut, name: str, layout, rng: random.Random, stall: float = 0.0):
        super().__init__(dut, name, layout, rng)
        self.stall = stall
        self.ready.value = 0

    async def receive(self, count: int) -> list:
        received = []
        while len(received) < count:
            ready = self.rng.random() >= self.stall
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and self.valid.value:
                received.append(self.layout.from_bits(self.payload.value.to_unsigned()))
            await RisingEdge(self.clk)
        self.ready.value = 0
        return received
