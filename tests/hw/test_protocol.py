# amaranth: UnusedElaboratable=no
"""The byte protocol's host side (frames, CRC, the reader) and the gateware CRC step against it."""

import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hw.host_link import crc8_step
from hw.protocol import (MAX_PROMPT_TOKENS, SYNC, FrameReader, Request, Response, crc8, frame,
                         prompt_frames)


def test_crc8_is_crc8_smbus():
    assert crc8(b"123456789") == 0xF4      # the catalogue's check value of CRC-8/SMBUS
    assert crc8(b"") == 0


def test_gateware_crc_step_equals_the_host_crc(rng):
    crc, byte = Signal(8), Signal(8)
    m = Module()
    out = Signal(8)
    m.d.comb += out.eq(crc8_step(crc, byte))
    cases = [(int(c), int(b)) for c, b in rng.integers(0, 256, size=(200, 2))]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc8(bytes([b]), c), (c, b)
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_frames_and_prompt_chunks():
    assert frame(Request.STATUS) == bytes([SYNC, Request.STATUS, 0, crc8(bytes([Request.STATUS, 0]))])
    tokens = list(range(2 * MAX_PROMPT_TOKENS + 3))
    frames = prompt_frames(tokens)
    assert [f[2] for f in frames] == [2 * MAX_PROMPT_TOKENS, 2 * MAX_PROMPT_TOKENS, 6]
    with pytest.raises(ValueError, match="at most 255"):
        frame(Request.PROMPT, bytes(256))


def test_reader_skips_garbage_false_sync_and_damage(rng):
    good = [(Response.TOKEN, (7,)), (Response.DONE, (3, 9, 0)), (Response.OK, (300,))]
    encoded = [frame(Response.TOKEN, (7).to_bytes(2, "little")),
               frame(Response.DONE, bytes([3, 0, 9, 0, 0])),
               frame(Response.OK, (300).to_bytes(2, "little"))]
    damaged = bytearray(encoded[0])
    damaged[3] ^= 0x40
    stream = (b"\x00\xA5\x99" + encoded[0] + bytes(damaged) + b"\xA5" + encoded[1] + encoded[2])
    reader = FrameReader()
    got = []
    cut = random.Random(int(rng.integers(1 << 30)))
    i = 0
    while i < len(stream):                   # fed in random pieces
        n = cut.randint(1, 5)
        got += reader.feed(stream[i:i + n])
        i += n
    assert got == good
    assert reader.skipped == 3 + len(damaged) + 1
