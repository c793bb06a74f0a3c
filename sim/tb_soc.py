"""cocotb benches for the SoC (hw/soc.py) through its UART pins, bit by bit.

``TB_PARAMS`` (JSON): ``sim.virtual_board.soc_params`` (model directory, engine, clock, baud).

- ``protocol``: prompts and generations give exactly ``IntegerModel.generate``'s tokens, and bad
  input (garbage, a damaged CRC, a truncated frame, an oversize prompt, requests during a
  generation, a RESET request and a reset of the SoC mid-stream) is answered or recovered from.
- ``bridge``: the virtual board of ``tritium chat --sim``: a pseudo-terminal (its path written to
  ``TB_PTY``) whose bytes go out on ``rx`` and whose reads are ``tx``'s bytes, until the file
  ``TB_STOP`` appears.
"""

import json
import os
import pty
import tty

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from hw.protocol import Error, FrameReader, Request, Response, frame, generate_frame, prompt_frames
from model.checkpoint import load_weights
from model.integer import IntegerModel

PARAMS = json.loads(os.environ.get("TB_PARAMS", "{}"))
CLOCK_NS = 10
POLL_CYCLES = 2000          # the bridge looks at the pseudo-terminal this often


class UartHost:
    """The host end of the SoC's UART: bytes out on ``rx``, bytes in from ``tx``."""

    def __init__(self, dut):
        self.dut = dut
        self.bit_ns = CLOCK_NS * round(PARAMS["clock_hz"] / PARAMS["baud"])
        self.received = bytearray()
        self.reader = FrameReader()
        self.responses = []
        self.framing_errors = 0

    async def start(self):
        dut = self.dut
        dut.rx.value = 1
        cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
        await self.reset()
        cocotb.start_soon(self._monitor())

    async def reset(self):
        """Reset the SoC; a response in flight is forgotten."""
        self.reader, self.responses = FrameReader(), []
        self.dut.rst.value = 1
        for _ in range(4):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def send(self, data: bytes):
        for byte in data:
            for bit in [0] + [byte >> i & 1 for i in range(8)] + [1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, unit="ns")

    async def _monitor(self):
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, unit="ns")
            assert int(tx.value) == 0, "a start bit shorter than half a bit"
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if not int(tx.value):          # no stop bit: a byte cut short by a reset
                self.framing_errors += 1
                continue
            self.received.append(byte)
            self.responses += self.reader.feed(bytes([byte]))

    async def receive(self, until=Response.DONE, limit_ns=None):
        """Responses up to and including the first of kind ``until``."""
        waited = 0
        while not any(kind == until for kind, _ in self.responses):
            await Timer(self.bit_ns * 10, unit="ns")
            waited += self.bit_ns * 10
            assert limit_ns is None or waited < limit_ns, f"no {until.name} within {limit_ns} ns"
        end = next(i for i, (kind, _) in enumerate(self.responses) if kind == until) + 1
        got, self.responses = self.responses[:end], self.responses[end:]
        return got


def tokens_of(responses):
    return [fields[0] for kind, fields in responses if kind == Response.TOKEN]


@cocotb.test()
async def protocol(dut):
    model = IntegerModel(load_weights(PARAMS["model"]))
    host = UartHost(dut)
    await host.start()
    prompt, count = [1, 2, 3, 4, 5][:model.config.vocab_size - 1], 6
    sampled = model.generate(prompt, count, temperature=0.8, top_k=3, seed=5)
    greedy = model.generate(prompt, count)

    async def prompt_ok(tokens=prompt):
        for f in prompt_frames(tokens):
            await host.send(f)
            assert await host.receive(Response.OK) == [(Response.OK, (len(tokens),))]

    await host.send(bytes([0x17, 0xA5, 0x00, 0x5A, 0xFF]))         # garbage, with a false SYNC
    await Timer(host.bit_ns * 10 * 20, unit="ns")                    # past the frame timeout
    assert await host.receive(Response.ERROR) == [(Response.ERROR, (Error.KIND, 0))]
    damaged = bytearray(prompt_frames(prompt)[0])
    damaged[4] ^= 1
    await host.send(bytes(damaged))
    assert await host.receive(Response.ERROR) == [(Response.ERROR, (Error.CRC, Request.PROMPT))]
    await host.send(prompt_frames(prompt)[0][:-3])                  # truncated
    assert await host.receive(Response.ERROR) == [(Response.ERROR, (Error.TIMEOUT, Request.PROMPT))]
    await host.send(frame(Request.PROMPT, bytes(200)))              # oversize
    assert await host.receive(Response.ERROR) == [(Response.ERROR, (Error.LENGTH, Request.PROMPT))]
    await Timer(host.bit_ns * 10 * 20, unit="ns")                    # skip the oversize payload
    host.responses.clear()                                           # (errors for false SYNCs in it)

    await prompt_ok()
    await host.send(generate_frame(count, temperature=0.8, top_k=3, seed=5))
    await host.send(prompt_frames(prompt)[0])                        # refused: busy
    got = await host.receive(Response.DONE)
    assert tokens_of(got) == sampled, f"{tokens_of(got)} != the model's {sampled}"
    assert (Response.ERROR, (Error.BUSY, Request.PROMPT)) in got

    await host.send(frame(Request.RESET))
    assert await host.receive(Response.OK) == [(Response.OK, (0,))]
    await prompt_ok()
    await host.send(generate_frame(count))
    await host.receive(Response.TOKEN)
    await host.reset()                                              # the SoC reset mid-stream
    await Timer(host.bit_ns * 10 * 2, unit="ns")
    host.reader, host.responses = FrameReader(), []
    await prompt_ok()
    await host.send(generate_frame(count))
    got = await host.receive(Response.DONE)
    assert tokens_of(got) == greedy, f"{tokens_of(got)} != the model's {greedy}"
    assert got[-1] == (Response.DONE, (count, len(prompt) + count - 1, 0))


@cocotb.test()
async def bridge(dut):
    host = UartHost(dut)
    await host.start()
    master, slave = pty.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    with open(os.environ["TB_PTY"] + ".tmp", "w") as f:
        f.write(os.ttyname(slave))
    os.rename(os.environ["TB_PTY"] + ".tmp", os.environ["TB_PTY"])
    sent = 0
    while not os.path.exists(os.environ["TB_STOP"]):
        try:
            data = os.read(master, 256)
        except (BlockingIOError, OSError):
            data = b""
        if data:
            await host.send(data)
        else:
            await Timer(POLL_CYCLES * CLOCK_NS, unit="ns")
        if len(host.received) > sent:
            os.write(master, bytes(host.received[sent:]))
            sent = len(host.received)
    os.close(master)
    os.close(slave)
