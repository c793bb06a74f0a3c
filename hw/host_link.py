"""The host side of the SoC: request frames from the UART's bytes to engine commands, the engine's
tokens and state back as response frames (the protocol: :mod:`hw.protocol`).

Two parts share a payload buffer:

- the *decoder* hunts for SYNC, checks each frame's kind, length, tokens (below the vocabulary)
  and CRC as its bytes arrive, drops a frame whose bytes stop for ``timeout`` cycles, and hands
  one request (or the error it found) at a time to the executor; it takes no bytes while a request
  waits (the SoC queues them in a FIFO), so a PROMPT's payload stays put while it runs;
- the *executor* runs a request on the engine and sends its answer. During a generation it keeps
  sending TOKEN frames (a token register: the engine does not wait on the UART unless a token
  frame takes longer than a token) and still answers STATUS, STOP and RESET; PROMPT and GENERATE
  are refused with ``ERROR BUSY``.

A response frame leaves one byte at a time on ``tx``; nothing waits on ``tx`` except the next
response. ``rx_lost`` (the UART's overrun or framing pulse) aborts the frame being received and
is answered with ``ERROR OVERRUN``.
"""

import contextlib
import struct

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .engine import Command, command_layout, status_signature, token_layout
from .protocol import (GENERATE_FORMAT, MAX_PAYLOAD, REQUEST_LENGTHS, RESPONSE_FORMATS,
                       SYNC, TOKEN_BYTES, Error, Request, Response, crc8)

STATUS_BYTES = 13   # the longest response payload (STATUS)


def crc8_step(crc, byte):
    """The protocol's CRC-8 after one more byte. The eight shift steps are linear over GF(2): each
    output bit is the XOR of the input bits whose single-bit CRC has it set."""
    value = Value.cast(crc ^ byte)[:8]
    single = [crc8(bytes([1 << i])) for i in range(8)]
    return Cat(Cat(value[i] for i in range(8) if single[i] >> j & 1).xor() for j in range(8))


def _pack(fmt: str, values) -> tuple:
    """``values`` (ints or Amaranth values) laid out as ``struct`` format ``fmt`` little-endian
    would: (the bits, the byte count)."""
    parts = []
    for code, value in zip(fmt.lstrip("<"), values):
        width = 8 * struct.calcsize(code)
        value = Const(value, width) if isinstance(value, int) else Value.cast(value)[:width]
        parts.append(Cat(value, Const(0, width - len(value))))
    return Cat(*parts), struct.calcsize(fmt)


class HostLink(wiring.Component):
    """The byte protocol's gateware end: decodes request frames from the UART into engine
    commands and answers with response frames (tokens, status, errors); one request at a time.

    Parameters
    ----------
    config : BitNetConfig
        The engine's model (vocabulary and context sizes).
    k_max : int
        The engine sampler's largest top-k (a GENERATE above it is refused).
    timeout : int
        Clock cycles without a byte after which a frame being received is dropped.
    """

    def __init__(self, config, *, k_max: int, timeout: int):
        if not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout must be a positive number of cycles, not {timeout!r}")
        if config.vocab_size > 1 << (8 * TOKEN_BYTES):
            raise ValueError(f"a token is {TOKEN_BYTES} bytes on the wire: a vocabulary of at most "
                             f"{1 << (8 * TOKEN_BYTES)}, not {config.vocab_size}")
        self._config, self._k_max, self._timeout = config, k_max, timeout
        super().__init__({
            "rx": In(stream.Signature(8)), "rx_lost": In(1),
            "tx": Out(stream.Signature(8)),
            # to and from the engine
            "command": Out(stream.Signature(command_layout(config, k_max))),
            "tokens_in": In(stream.Signature(token_layout(config))),
            "status": In(status_signature(config)),
            # for LEDs
            "generating": Out(1), "fault": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        words = MAX_PAYLOAD // TOKEN_BYTES
        m.submodules.buffer = buffer = memory.Memory(shape=16, depth=words, init=[])
        write = buffer.write_port(granularity=8)
        read = buffer.read_port()      # (synchronous: block RAM on iCE40, where LUT RAM is not)

        # -- decoder -------------------------------------------------------------------------
        request = Signal(data.StructLayout({"kind": 8, "length": 8, "error": 4}))
        pending = Signal()     # a request (or an error) waits for the executor
        release = Signal()     # the executor is done with it
        kind, length, index, crc = Signal(8), Signal(8), Signal(8), Signal(8)
        low_byte, bad_value, lost = Signal(8), Signal(), Signal()
        idle = Signal(range(self._timeout + 1))
        with m.If(release):
            m.d.sync += pending.eq(0)
        with m.If(self.rx_lost):
            m.d.sync += lost.eq(1)
        byte = self.rx.payload
        m.d.comb += self.rx.ready.eq(~pending)
        got = self.rx.valid & self.rx.ready
        with m.If(got):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != self._timeout):
            m.d.sync += idle.eq(idle + 1)
        abort = lost | (idle == self._timeout)

        def emit(error, kind_value=0):
            m.d.sync += [request.kind.eq(kind_value), request.length.eq(length),
                         request.error.eq(error), pending.eq(1)]
            m.next = "HUNT"

        @contextlib.contextmanager
        def receiving(state):
            """A state inside a frame (the body runs on a byte): lost bytes or a timeout drop it."""
            with m.State(state):
                with m.If(abort):
                    m.d.sync += lost.eq(0)
                    emit(Mux(lost, Error.OVERRUN, Error.TIMEOUT), kind)
                with m.Elif(got):
                    m.d.sync += crc.eq(crc8_step(crc, byte))
                    yield

        lengths = {int(k): v for k, v in REQUEST_LENGTHS.items()}
        with m.FSM(name="decoder"):
            with m.State("HUNT"):
                with m.If(lost & ~pending):
                    m.d.sync += lost.eq(0)
                    emit(Error.OVERRUN)
                with m.Elif(got & (byte == SYNC)):
                    m.d.sync += [crc.eq(0), kind.eq(0)]
                    m.next = "KIND"
            with receiving("KIND"):
                m.d.sync += kind.eq(byte)
                with m.If(Cat(byte == k for k in lengths).any()):
                    m.next = "LENGTH"
                with m.Else():
                    emit(Error.KIND)
            with receiving("LENGTH"):
                m.d.sync += [length.eq(byte), index.eq(0), bad_value.eq(0)]
                allowed = Signal()
                with m.Switch(kind):
                    for k, n in lengths.items():
                        with m.Case(k):
                            m.d.comb += allowed.eq((byte != 0) & (byte <= MAX_PAYLOAD) & ~byte[0]
                                                   if n is None else byte == n)
                with m.If(~allowed):
                    m.d.sync += [request.kind.eq(kind), request.length.eq(byte),
                                 request.error.eq(Error.LENGTH), pending.eq(1)]
                    m.next = "HUNT"
                with m.Elif(byte == 0):
                    m.next = "CRC"
                with m.Else():
                    m.next = "PAYLOAD"
            with receiving("PAYLOAD"):
                m.d.comb += [write.addr.eq(index >> 1), write.data.eq(Cat(byte, byte)),
                             write.en.eq(Mux(index[0], 0b10, 0b01))]
                m.d.sync += [index.eq(index + 1), low_byte.eq(byte)]
                with m.If((kind == Request.PROMPT) & index[0] & (Cat(low_byte, byte) >= cfg.vocab_size)):
                    m.d.sync += bad_value.eq(1)
                with m.If(index == length - 1):
                    m.next = "CRC"
            with m.State("CRC"):
                with m.If(abort):
                    m.d.sync += lost.eq(0)
                    emit(Mux(lost, Error.OVERRUN, Error.TIMEOUT), kind)
                with m.Elif(got):
                    emit(Mux(byte != crc, Error.CRC, Mux(bad_value, Error.VALUE, 0)), kind)

        # -- response sender -----------------------------------------------------------------
        send = Signal()                      # start sending the response below
        response_kind = Signal(8)
        response_payload = Signal(8 * STATUS_BYTES)
        response_length = Signal(8)
        frame = Signal(8 * (STATUS_BYTES + 3))
        left = Signal(range(STATUS_BYTES + 5))   # bytes still to send, the CRC included
        tx_crc = Signal(8)
        sending = left != 0
        with m.If(send):
            m.d.sync += [frame.eq(Cat(Const(SYNC, 8), response_kind, response_length, response_payload)),
                         left.eq(response_length + 4), tx_crc.eq(0)]
        m.d.comb += [self.tx.valid.eq(sending),
                     self.tx.payload.eq(Mux(left == 1, tx_crc, frame[:8]))]
        first = Signal()                         # the SYNC byte is next (not in the CRC)
        with m.If(send):
            m.d.sync += first.eq(1)
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += [frame.eq(frame >> 8), left.eq(left - 1), first.eq(0)]
            with m.If(~first):
                m.d.sync += tx_crc.eq(crc8_step(tx_crc, frame[:8]))

        def respond(kind_value, *values):
            bits, count = _pack(RESPONSE_FORMATS[kind_value], values)
            m.d.comb += [send.eq(1), response_kind.eq(kind_value), response_length.eq(count),
                         response_payload.eq(bits)]

        # -- executor ------------------------------------------------------------------------
        cmd = self.command.payload
        # ``word`` is the word on ``read.data``: the address is the word it becomes next cycle
        word, next_word = Signal(range(words)), Signal(range(words))
        m.d.comb += next_word.eq(word)
        m.d.sync += word.eq(next_word)
        arguments = Signal(16 * 6)              # GENERATE's payload, read a word a cycle
        token, token_full, reset_after, fault = Signal(16), Signal(), Signal(), Signal()
        m.d.comb += [read.addr.eq(next_word), self.fault.eq(fault)]
        flags = Cat(self.status.busy, self.generating, self.status.full, self.status.error)
        status_fields = (self.status.position, self.status.tokens, flags, cfg.vocab_size,
                         cfg.max_position_embeddings, self.status.cycles)

        def refuse(code):
            respond(Response.ERROR, code, request.kind)
            m.d.comb += release.eq(1)
            m.d.sync += fault.eq(1)

        with m.FSM(name="executor"):
            with m.State("IDLE"):
                with m.If(pending & ~sending):
                    with m.If(request.error != 0):
                        refuse(request.error)
                    with m.Else():
                        with m.Switch(request.kind):
                            with m.Case(Request.RESET):
                                m.d.comb += release.eq(1)
                                m.next = "RESET"
                            with m.Case(Request.PROMPT):
                                m.d.comb += next_word.eq(0)
                                m.next = "PROMPT"
                            with m.Case(Request.GENERATE):
                                m.d.comb += next_word.eq(0)
                                m.next = "ARGUMENTS"
                            with m.Case(Request.STOP):
                                respond(Response.OK, self.status.position)
                                m.d.comb += release.eq(1)
                            with m.Case(Request.STATUS):
                                respond(Response.STATUS, *status_fields)
                                m.d.comb += release.eq(1)
            with m.State("PROMPT"):
                m.d.comb += [self.command.valid.eq(1), cmd.op.eq(Command.TOKEN), cmd.token.eq(read.data)]
                with m.If(self.command.ready):
                    m.d.comb += next_word.eq(word + 1)
                    with m.If(word == (request.length >> 1) - 1):
                        m.next = "PROMPT_DONE"
            with m.State("PROMPT_DONE"):
                with m.If(~self.status.busy & ~sending):
                    with m.If(self.status.full):
                        refuse(Error.FULL)
                    with m.Else():
                        respond(Response.OK, self.status.position)
                        m.d.comb += release.eq(1)
                    m.next = "IDLE"
            with m.State("ARGUMENTS"):
                m.d.sync += arguments.eq(Cat(arguments[16:], read.data))
                m.d.comb += next_word.eq(word + 1)
                with m.If(word == len(arguments) // 16 - 1):
                    m.next = "GENERATE"
            with m.State("GENERATE"):
                count, greedy, mant, exp, top_k, seed = (
                    arguments[8 * a:8 * b] for a, b in _offsets(GENERATE_FORMAT))
                with m.If(top_k > self._k_max):
                    with m.If(~sending):
                        refuse(Error.VALUE)
                        m.next = "IDLE"
                with m.Else():
                    m.d.comb += [self.command.valid.eq(1), cmd.op.eq(Command.GENERATE),
                                 cmd.count.eq(count), cmd.greedy.eq(greedy[0]), cmd.coef.mant.eq(mant),
                                 cmd.coef.exp.eq(exp.as_signed()), cmd.top_k.eq(top_k), cmd.seed.eq(seed)]
                    with m.If(self.command.ready):
                        m.d.comb += release.eq(1)
                        m.d.sync += [token_full.eq(0), reset_after.eq(0)]
                        m.next = "GENERATING"
            with m.State("GENERATING"):
                m.d.comb += [self.generating.eq(1), self.tokens_in.ready.eq(~token_full)]
                with m.If(self.tokens_in.valid & self.tokens_in.ready):
                    m.d.sync += [token.eq(self.tokens_in.payload.token), token_full.eq(1)]
                with m.If(~sending):
                    with m.If(token_full):
                        respond(Response.TOKEN, token)
                        m.d.sync += token_full.eq(0)
                    with m.Elif(pending):
                        with m.If(request.error != 0):
                            refuse(request.error)
                        with m.Else():
                            with m.Switch(request.kind):
                                with m.Case(Request.STOP, Request.RESET):
                                    m.d.comb += [self.status.stop.eq(1), release.eq(1)]
                                    m.d.sync += reset_after.eq(request.kind == Request.RESET)
                                with m.Case(Request.STATUS):
                                    respond(Response.STATUS, *status_fields)
                                    m.d.comb += release.eq(1)
                                with m.Default():
                                    refuse(Error.BUSY)
                    with m.Elif(~self.status.busy & ~self.tokens_in.valid):
                        respond(Response.DONE, self.status.tokens, self.status.position,
                                Cat(self.status.busy, Const(0, 1), self.status.full, self.status.error))
                        with m.If(reset_after):
                            m.next = "RESET"
                        with m.Else():
                            m.next = "IDLE"
            with m.State("RESET"):
                m.d.comb += [self.command.valid.eq(1), cmd.op.eq(Command.RESET)]
                with m.If(self.command.ready):
                    m.d.sync += fault.eq(0)
                    m.next = "RESET_DONE"
            with m.State("RESET_DONE"):
                # (the engine has taken the RESET once it is not busy: the SoC may queue commands)
                with m.If(~sending & ~self.status.busy):
                    respond(Response.OK, self.status.position)
                    m.next = "IDLE"
        return m


def _offsets(fmt: str):
    """(start, end) byte offsets of each field of ``struct`` format ``fmt``."""
    start = 0
    for code in fmt.lstrip("<"):
        size = struct.calcsize(code)
        yield start, start + size
        start += size
