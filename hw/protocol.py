"""The byte protocol between a host and the SoC (over the UART): one definition for the gateware
(:mod:`hw.host_link`) and the host (``tritium chat``).

Every frame, both ways::

    SYNC (0xA5) · kind · length · payload (length bytes) · CRC-8 of kind, length and payload

CRC-8 is polynomial 0x07, initial value 0 (CRC-8/SMBUS). Numbers are little-endian.

Requests (host → board); the host waits for a request's answer before the next one, except STOP,
STATUS and RESET, which may come at any time:

=========  ================================================  ===========================
RESET      (none)                                            ``OK``; during a generation
                                                             it stops it first (``DONE``)
PROMPT     tokens, u16 each, 1 to ``MAX_PROMPT_TOKENS``      ``OK`` once all are in
GENERATE   count u16, flags u8 (bit 0 greedy), coef mant     ``TOKEN`` × n, then ``DONE``
           u16, coef exp i8, top_k u8, seed u32 (the
           generator state, ``xorshift_seed``)
STOP       (none)                                            during a generation: it ends
                                                             after the next token (``DONE``);
                                                             otherwise ``OK``
STATUS     (none)                                            ``STATUS``
=========  ================================================  ===========================

Responses (board → host): ``OK`` position u16; ``TOKEN`` token u16; ``DONE`` tokens u16,
position u16, flags u8; ``STATUS`` position u16, tokens u16, flags u8, vocab u16, context u16,
cycles u32 (the engine's busy cycles, low 32 bits); ``ERROR`` code u8, request kind u8 (0 when
the frame's kind was not read). Flags: bit 0 busy, 1 generating, 2 context full, 3 engine error.

A frame whose bytes stop arriving for ``timeout`` cycles is dropped (``ERROR TIMEOUT``); bytes
outside a frame are skipped until the next SYNC.
"""

import enum
import struct

from model.numerics import sampling_coefficient, xorshift_seed

SYNC = 0xA5
CRC_POLY = 0x07
MAX_PROMPT_TOKENS = 32
MAX_PAYLOAD = 2 * MAX_PROMPT_TOKENS
TOKEN_BYTES = 2
GENERATE_FORMAT = "<HBHbBI"     # count, flags, coef mant, coef exp, top_k, seed


class Request(enum.IntEnum):
    RESET = 0x01
    PROMPT = 0x02
    GENERATE = 0x03
    STOP = 0x04
    STATUS = 0x05


class Response(enum.IntEnum):
    OK = 0x81
    TOKEN = 0x82
    DONE = 0x83
    STATUS = 0x84
    ERROR = 0x85


class Error(enum.IntEnum):
    CRC = 1          # the CRC did not match
    KIND = 2         # no such request
    LENGTH = 3       # a payload length the request does not take
    TIMEOUT = 4      # the frame stopped arriving
    BUSY = 5         # PROMPT or GENERATE during a generation
    FULL = 6         # the context is full: prompt tokens beyond it were dropped
    VALUE = 7        # a token outside the vocabulary, or top_k above the sampler's k_max
    OVERRUN = 8      # received bytes were lost (UART overrun or framing error)


class Flag(enum.IntFlag):
    BUSY = 1
    GENERATING = 2
    FULL = 4
    ENGINE_ERROR = 8


# Payload lengths per request (None: PROMPT's, any even length up to MAX_PAYLOAD).
REQUEST_LENGTHS = {Request.RESET: 0, Request.PROMPT: None,
                   Request.GENERATE: struct.calcsize(GENERATE_FORMAT),
                   Request.STOP: 0, Request.STATUS: 0}
RESPONSE_FORMATS = {Response.OK: "<H", Response.TOKEN: "<H", Response.DONE: "<HHB",
                    Response.STATUS: "<HHBHHI", Response.ERROR: "<BB"}


def crc8(data: bytes, crc: int = 0) -> int:
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY if crc & 0x80 else crc << 1) & 0xFF
    return crc


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One frame of ``kind`` with ``payload``."""
    if len(payload) > 255:
        raise ValueError(f"a payload is at most 255 bytes, not {len(payload)}")
    body = bytes([kind, len(payload)]) + payload
    return bytes([SYNC]) + body + bytes([crc8(body)])


def prompt_frames(tokens) -> list[bytes]:
    """PROMPT frames for ``tokens``, ``MAX_PROMPT_TOKENS`` at most each."""
    tokens = list(tokens)
    return [frame(Request.PROMPT, struct.pack(f"<{len(chunk)}H", *chunk))
            for chunk in (tokens[i:i + MAX_PROMPT_TOKENS]
                          for i in range(0, len(tokens), MAX_PROMPT_TOKENS))]


def generate_frame(count: int, *, temperature: float = 0.0, top_k: int | None = None, seed: int = 0) -> bytes:
    """A GENERATE frame with ``model.integer.IntegerModel.generate``'s parameters: temperature 0 is
    greedy, else the sampler's scale is ``log2(e)/T`` (``sampling_coefficient``); the seed becomes
    the generator state (``xorshift_seed``)."""
    mant, exp = sampling_coefficient(temperature) or (0, 0)
    return frame(Request.GENERATE, struct.pack(GENERATE_FORMAT, count, int(temperature <= 0), mant, exp,
                                               top_k or 0, xorshift_seed(seed)))


class FrameReader:
    """Splits received bytes into ``(kind, fields)`` responses: bytes before a SYNC, frames with a
    bad CRC, unknown kinds and wrong lengths are skipped and counted in ``skipped``."""

    def __init__(self):
        self._buffer = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[tuple[Response, tuple]]:
        self._buffer += data
        out = []
        while True:
            start = self._buffer.find(SYNC)
            if start < 0:
                self.skipped += len(self._buffer)
                self._buffer.clear()
                return out
            self.skipped += start
            del self._buffer[:start]
            if len(self._buffer) < 3:
                return out
            kind, length = self._buffer[1], self._buffer[2]
            known = (kind in Response._value2member_map_
                     and struct.calcsize(RESPONSE_FORMATS[Response(kind)]) == length)
            if known and len(self._buffer) < 4 + length:
                return out
            if not known or crc8(bytes(self._buffer[1:3 + length])) != self._buffer[3 + length]:
                # a false SYNC or a damaged frame: resynchronize after this byte
                self.skipped += 1
                del self._buffer[:1]
                continue
            payload = bytes(self._buffer[3:3 + length])
            del self._buffer[:4 + length]
            out.append((Response(kind), struct.unpack(RESPONSE_FORMATS[Response(kind)], payload)))
