"""cocotb benches for the SoC (hw/soc.py) through its UART pins, bit by bit.

``TB_PARAMS`` (JSON): ``sim.virtual_board.soc_params`` (model directory, engine, clock, baud).

- ``protocol``: prompts and generations give exactly ``IntegerModel.generate``'s tokens, and bad
  input (garbage, a damaged CRC, a truncated frame, an oversize prompt, requests during a
  generation, a RESET request and a reset of the SoC mid-stream) is answered or recovered from.
- ``tokens``: a prompt, then a greedy and a sampled generation give ``IntegerModel.generate``'s
  tokens (the short check, for the gate-level netlist).
- ``fuzz``: seeded random bursts (:mod:`sim.fuzz`; ``TB_FUZZ``: JSON ``seed``, ``bursts``,
  ``result`` path, optional ``progress`` path: bursts done, every 20), each followed by a check:
  the SoC answers STATUS, returns to an idle empty context on RESET, and a prompt and a generation
  then give the integer model's tokens. Every byte it sends is part of a well-formed response
  (unless a reset cut one short). Writes the counts and seconds to ``result``.
- ``bridge``: the virtual board of ``tritium chat --sim``: a pseudo-terminal (its path written to
  ``TB_PTY``) whose bytes go out on ``rx`` and whose reads are ``tx``'s bytes, until the file
  ``TB_STOP`` appears.
"""

import json
import os
import pty
import time
import tty

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw.protocol import Error, Flag, FrameReader, Request, Response, frame, generate_frame, prompt_frames
from hw.soc import TIMEOUT_BYTES
from hw.uart import FRAME_BITS
from model.checkpoint import load_weights
from model.integer import IntegerModel
from sim.fuzz import SENT, bursts

PARAMS = json.loads(os.environ.get("TB_PARAMS", "{}"))
CLOCK_NS = 10
POLL_CYCLES = 2000          # the bridge looks at the pseudo-terminal this often
QUIET_CYCLES = 20_000       # fuzz: the SoC sent nothing for this long: a burst's answers are over
SETTLE_TRIES = 8            # fuzz: RESET and STATUS until answered so


class UartHost:
    """The host end of the SoC's UART: bytes out on ``rx``, bytes in from ``tx``."""

    def __init__(self, dut):
        self.dut = dut
        self.bit_ns = CLOCK_NS * round(PARAMS["clock_hz"] / PARAMS["baud"])
        self.received = bytearray()
        self.reader = FrameReader()
        self.responses = []
        self.framing_errors = 0           # bytes cut short (a reset of the SoC): glitches, no stop bit
        self.last_byte_ns = 0

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

    async def send(self, data: bytes, stop_bit: int = 1):
        for byte in data:
            for bit in [0] + [byte >> i & 1 for i in range(8)] + [stop_bit]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, unit="ns")
        self.dut.rx.value = 1

    async def _monitor(self):
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(tx.value):              # a start bit shorter than half a bit: cut by a reset
                self.framing_errors += 1
                continue
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
            self.last_byte_ns = get_sim_time("ns")

    async def quiet(self, quiet_ns: int, limit_ns: int):
        """Wait until no byte has come for ``quiet_ns``; an AssertionError after ``limit_ns``."""
        waited = 0
        while get_sim_time("ns") - self.last_byte_ns < quiet_ns:
            assert waited < limit_ns, f"the SoC kept sending for {limit_ns} ns"
            await Timer(quiet_ns // 4, unit="ns")
            waited += quiet_ns // 4

    async def prompt(self, tokens, limit_ns=None):
        """Send ``tokens`` as PROMPT frames; each must be answered OK with the prompt's length."""
        for f in prompt_frames(tokens):
            await self.send(f)
            got = await self.receive(Response.OK, limit_ns=limit_ns)
            assert got == [(Response.OK, (len(tokens),))], f"answers to a prompt: {got}"

    async def receive(self, until=Response.DONE, limit_ns=None, required=True):
        """Responses up to and including the first of kind ``until``; if none comes within
        ``limit_ns``, an AssertionError, or None where not ``required``."""
        waited = 0
        while not any(kind == until for kind, _ in self.responses):
            await Timer(self.bit_ns * 10, unit="ns")
            waited += self.bit_ns * 10
            if limit_ns is not None and waited >= limit_ns:
                assert not required, f"no {until.name} within {limit_ns} ns"
                return None
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

    await host.prompt(prompt)
    await host.send(generate_frame(count, temperature=0.8, top_k=3, seed=5))
    await host.send(prompt_frames(prompt)[0])                        # refused: busy
    got = await host.receive(Response.DONE)
    assert tokens_of(got) == sampled, f"{tokens_of(got)} != the model's {sampled}"
    assert (Response.ERROR, (Error.BUSY, Request.PROMPT)) in got

    await host.send(frame(Request.RESET))
    assert await host.receive(Response.OK) == [(Response.OK, (0,))]
    await host.prompt(prompt)
    await host.send(generate_frame(count))
    await host.receive(Response.TOKEN)
    await host.reset()                                              # the SoC reset mid-stream
    await Timer(host.bit_ns * 10 * 2, unit="ns")
    host.reader, host.responses = FrameReader(), []
    await host.prompt(prompt)
    await host.send(generate_frame(count))
    got = await host.receive(Response.DONE)
    assert tokens_of(got) == greedy, f"{tokens_of(got)} != the model's {greedy}"
    assert got[-1] == (Response.DONE, (count, len(prompt) + count - 1, 0))


@cocotb.test()
async def tokens(dut):
    model = IntegerModel(load_weights(PARAMS["model"]))
    host = UartHost(dut)
    await host.start()
    prompt, count = [1, 2, 3][:model.config.vocab_size - 1], 4
    for sampling in ({}, dict(temperature=0.8, top_k=3, seed=5)):
        await host.send(frame(Request.RESET))
        assert await host.receive(Response.OK) == [(Response.OK, (0,))]
        await host.prompt(prompt)
        await host.send(generate_frame(count, **sampling))
        got, want = tokens_of(await host.receive(Response.DONE)), model.generate(prompt, count, **sampling)
        assert got == want, f"{got} != the model's {want} ({sampling or 'greedy'})"


@cocotb.test()
async def fuzz(dut):
    job = json.loads(os.environ["TB_FUZZ"])
    model = IntegerModel(load_weights(PARAMS["model"]))
    vocab, k_max = model.config.vocab_size, PARAMS["engine"].get("k_max", 8)
    prompt, count, sampling = [1, 2, 3][:vocab - 1], 2, dict(temperature=0.8, top_k=min(3, k_max), seed=7)
    want = model.generate(prompt, count, **sampling)
    host = UartHost(dut)
    await host.start()
    byte_ns = host.bit_ns * FRAME_BITS
    limit_ns = byte_ns * 200 + 200_000 * CLOCK_NS          # a generation of the tiny model, with room
    counts, started = {}, time.perf_counter()

    async def settle():
        """RESET and STATUS until they are answered OK at position 0 and an idle STATUS, and then
        nothing more (a burst's requests may still be queued behind a long prompt: the SoC holds
        16 bytes while a request runs, then loses bytes and answers OVERRUN)."""
        for _ in range(SETTLE_TRIES):
            await host.quiet(QUIET_CYCLES * CLOCK_NS, limit_ns)
            host.responses.clear()
            await host.send(frame(Request.RESET) + frame(Request.STATUS))
            got = await host.receive(Response.STATUS, limit_ns=limit_ns, required=False)
            await host.quiet(QUIET_CYCLES * CLOCK_NS, limit_ns)
            if got and not host.responses and len(got) == 2 and got[0] == (Response.OK, (0,)):
                position, _, flags, *_ = got[1][1]
                if position == 0 and not flags & (Flag.BUSY | Flag.GENERATING):
                    return
        raise AssertionError(f"no idle STATUS after {SETTLE_TRIES} RESETs")

    await settle()
    for index, steps in enumerate(bursts(job["seed"], job["bursts"], vocab=vocab, k_max=k_max,
                                         timeout_bytes=TIMEOUT_BYTES)):
        reset, framing_errors = False, host.framing_errors
        for step in steps:
            counts[step.kind] = counts.get(step.kind, 0) + 1
            if step.kind == "pause":
                await Timer(byte_ns * step.bytes_idle, unit="ns")
            elif step.kind == "reset":
                await host.reset()
                reset = True
            else:
                await host.send(step.data, stop_bit=int(step.kind != "framing"))
        await Timer(byte_ns * 2 * TIMEOUT_BYTES, unit="ns")      # a frame cut short times out
        try:
            await settle()
            host.responses.clear()
            await host.prompt(prompt, limit_ns=limit_ns)
            await host.send(generate_frame(count, **sampling))
            got = tokens_of(await host.receive(Response.DONE, limit_ns=limit_ns))
            assert got == want, f"tokens {got}, the model's {want}"
            assert reset or (host.reader.skipped, host.framing_errors) == (0, framing_errors), \
                f"{host.reader.skipped} bytes outside responses, " \
                f"{host.framing_errors - framing_errors} cut short"
        except AssertionError as error:
            answers = ", ".join(f"{kind.name} {fields}" for kind, fields in host.responses[-8:])
            raise AssertionError(f"burst {index} (seed {job['seed']}): {error}; steps: "
                                 f"{' | '.join(map(str, steps))}; last answers: {answers}") from None
        host.reader.skipped = 0
        if job.get("progress") and (index + 1) % 20 == 0:
            with open(job["progress"], "w") as f:
                f.write(str(index + 1))
    seconds = time.perf_counter() - started
    frames = sum(counts.get(kind, 0) for kind in SENT)
    with open(job["result"], "w") as f:
        json.dump({"bursts": job["bursts"], "frames": frames, "steps": counts, "seconds": seconds}, f)


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
