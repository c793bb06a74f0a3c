# amaranth: UnusedElaboratable=no
"""HostLink and a tiny Engine in the Amaranth simulator, byte for byte: the protocol's answers,
tokens equal to IntegerModel.generate's, and every kind of bad input answered (garbage, a bad CRC,
an unknown kind, oversize and odd lengths, tokens outside the vocabulary, a top-k too large, a
truncated frame, commands during a generation, STOP and RESET mid-stream) without wedging."""

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from hw.engine import Engine
from hw.host_link import HostLink
from hw.protocol import Error, Flag, FrameReader, Request, Response, frame, generate_frame, prompt_frames
from hw.testing import run
from model.integer import tiny_model

TIMEOUT = 200
ENGINE = dict(rows=2, simd=4, lanes=2)


class LinkedEngine(wiring.Component):
    """HostLink in front of an Engine, the UART's byte streams as ports."""

    def __init__(self, model):
        self.engine = Engine(model, **ENGINE)
        self.link = HostLink(model.config, k_max=self.engine.k_max, timeout=TIMEOUT)
        members = self.link.signature.members
        super().__init__({"rx": members["rx"], "tx": members["tx"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.link = engine, link = self.engine, self.link
        connect(m, wiring.flipped(self.rx), link.rx)
        connect(m, link.tx, wiring.flipped(self.tx))
        connect(m, link.command, engine.command)
        connect(m, engine.o, link.tokens_in)
        connect(m, engine.status, link.status)
        return m


def converse(dut, script, max_cycles):
    """Run ``script(send, receive)``: ``send(bytes)`` puts bytes on rx, ``receive(n)`` waits for
    the next n response frames (skipped bytes fail the test)."""
    reader, responses, cycle = FrameReader(), [], [0]

    async def host(ctx):
        async def send(data, gap=0):
            for byte in data:
                ctx.set(dut.rx.payload, byte)
                ctx.set(dut.rx.valid, 1)
                await ctx.tick().until(dut.rx.ready)
                ctx.set(dut.rx.valid, 0)
                if gap:
                    await ctx.tick().repeat(gap)

        async def receive(count):
            while len(responses) < count:
                await ctx.tick()
            got = responses[:count]
            del responses[:count]
            print(f"cycle {cycle[0]}: {got}")
            return got

        async def pause(cycles):
            await ctx.tick().repeat(cycles)

        await script(send, receive, pause)
        await ctx.tick().repeat(50)
        assert responses == [] and reader.skipped == 0

    async def device(ctx):
        ctx.set(dut.tx.ready, 1)
        async for _, _, valid, byte in ctx.tick().sample(dut.tx.valid, dut.tx.payload):
            cycle[0] += 1
            if valid:
                responses.extend(reader.feed(bytes([int(byte)])))

    run(dut, [host], background=[device], max_cycles=max_cycles, vcd_name="host_link")


@pytest.mark.slow
def test_prompt_generate_status(tmp_path):
    model = tiny_model(tmp_path, 3, max_position_embeddings=48)
    dut = LinkedEngine(model)
    prompt = [1, 5, 9, 2, 7] * 7              # 35 tokens: two PROMPT frames
    expected = model.generate(prompt, 6, temperature=0.9, top_k=4, seed=11)

    async def script(send, receive, pause):
        frames = prompt_frames(prompt)
        assert len(frames) == 2
        for f in frames:
            await send(f)
        assert await receive(2) == [(Response.OK, (32,)), (Response.OK, (35,))]
        await send(generate_frame(6, temperature=0.9, top_k=4, seed=11))
        got = await receive(7)
        assert [t for kind, (t,) in got[:6] if kind == Response.TOKEN] == expected
        assert got[6] == (Response.DONE, (6, 40, 0))
        await send(frame(Request.STATUS))
        (kind, (position, tokens, flags, vocab, context, cycles)), = await receive(1)
        assert (kind, position, tokens, flags, vocab, context) == (Response.STATUS, 40, 6, 0, 11, 48)
        assert cycles > 0

    converse(dut, script, max_cycles=400_000)


@pytest.mark.slow
def test_bad_input_never_wedges(tmp_path):
    model = tiny_model(tmp_path, 4, max_position_embeddings=24)
    dut = LinkedEngine(model)
    prompt = [3, 1, 4]
    greedy = model.generate(prompt, 12)

    async def script(send, receive, pause):
        await send(bytes([0x00, 0x13, 0xFF, 0x5A]))              # garbage: skipped silently
        await send(frame(Request.STATUS)[:-1] + b"\x00")          # CRC damaged
        assert await receive(1) == [(Response.ERROR, (Error.CRC, Request.STATUS))]
        await send(frame(0x42))                                   # no such request
        assert await receive(1) == [(Response.ERROR, (Error.KIND, 0))]
        await pause(TIMEOUT)                                      # the rest of that frame
        await send(frame(Request.PROMPT, bytes(66)))              # oversize
        assert await receive(1) == [(Response.ERROR, (Error.LENGTH, Request.PROMPT))]
        await pause(TIMEOUT)
        await send(frame(Request.PROMPT, bytes(3)))               # odd length
        assert await receive(1) == [(Response.ERROR, (Error.LENGTH, Request.PROMPT))]
        await pause(TIMEOUT)
        await send(prompt_frames([1, 11])[0])                     # token 11 of a vocabulary of 11
        assert await receive(1) == [(Response.ERROR, (Error.VALUE, Request.PROMPT))]
        await send(prompt_frames(prompt)[0][:5])                  # truncated
        assert await receive(1) == [(Response.ERROR, (Error.TIMEOUT, Request.PROMPT))]
        await send(frame(Request.STATUS))                         # nothing went into the engine
        (_, (position, *_)), = await receive(1)
        assert position == 0
        await send(generate_frame(3, temperature=1.0, top_k=9))  # k_max is 8
        assert await receive(1) == [(Response.ERROR, (Error.VALUE, Request.GENERATE))]

        await send(prompt_frames(prompt)[0])
        assert await receive(1) == [(Response.OK, (3,))]
        await send(generate_frame(12))
        first = await receive(1)
        await send(prompt_frames([2])[0])                         # refused during a generation
        await send(generate_frame(2))
        await send(frame(Request.STATUS))                         # answered during a generation
        await send(frame(Request.STOP))
        got = first
        while got[-1][0] != Response.DONE:
            got += await receive(1)
        tokens = [fields[0] for kind, fields in got if kind == Response.TOKEN]
        others = [(kind, fields) for kind, fields in got if kind != Response.TOKEN]
        assert others[:2] == [(Response.ERROR, (Error.BUSY, Request.PROMPT)),
                              (Response.ERROR, (Error.BUSY, Request.GENERATE))]
        assert others[2][0] == Response.STATUS and others[2][1][2] & Flag.GENERATING
        assert 2 <= len(tokens) < 12 and tokens == greedy[:len(tokens)]   # stopped early
        assert others[3:] == [(Response.DONE, (len(tokens), 3 + len(tokens) - 1, 0))]

        await send(frame(Request.RESET))
        assert await receive(1) == [(Response.OK, (0,))]
        await send(prompt_frames(prompt)[0])
        await send(generate_frame(12))
        got = await receive(2)
        await send(frame(Request.RESET))                         # reset mid-stream
        while got[-1][0] != Response.OK:
            got += await receive(1)
        tokens = [fields[0] for kind, fields in got if kind == Response.TOKEN]
        assert tokens == greedy[:len(tokens)] and len(tokens) < 12
        assert [kind for kind, _ in got if kind != Response.TOKEN] == [Response.OK, Response.DONE,
                                                                       Response.OK]
        await send(prompt_frames(prompt)[0])                     # and it still works
        await send(generate_frame(12))
        got = await receive(14)
        assert [fields[0] for kind, fields in got[1:13]] == greedy
        assert got[13] == (Response.DONE, (12, 14, 0))
        await send(prompt_frames(list(range(10)))[0])            # 14 + 10 = the context, 24
        assert await receive(1) == [(Response.OK, (24,))]
        await send(prompt_frames([1])[0])                        # beyond it
        assert await receive(1) == [(Response.ERROR, (Error.FULL, Request.PROMPT))]

    converse(dut, script, max_cycles=60_000)
