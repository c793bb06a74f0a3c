"""Seeded random traffic for the SoC's byte protocol (:mod:`hw.protocol`): the bursts that
sim/tb_soc.py's ``fuzz`` bench plays on the UART pins (``tritium bench fuzz``, and a short slice in
the tests).

A burst is a list of :class:`Step`: requests with random fields (tokens outside the vocabulary,
top-k above the sampler's, counts, seeds and sampling coefficients at random), frames with a flipped
bit, an unknown kind, a wrong or oversize length, frames cut short, garbage with false SYNCs, bytes
without a stop bit, idle pauses up to past the frame timeout, and resets of the SoC. Each request is
sent without waiting for its answer, so every request also lands during generations. The same seed
gives the same bursts: a failing one replays from its seed and index (:func:`bursts`).
"""

import dataclasses
import random
import struct

from hw.protocol import GENERATE_FORMAT, MAX_PAYLOAD, MAX_PROMPT_TOKENS, SYNC, Request, crc8, frame

# How often each step comes (relative weights).
WEIGHTS = {"request": 8, "crc": 2, "kind": 1, "length": 1, "oversize": 1, "truncated": 2,
           "garbage": 2, "framing": 1, "pause": 2, "reset": 1}
SENT = ("request", "crc", "kind", "length", "oversize", "truncated", "garbage", "framing")
MAX_BURST = 12
MAX_COUNT = 4           # tokens a fuzzed GENERATE asks for at most (a burst stays short)


@dataclasses.dataclass(frozen=True)
class Step:
    """``kind`` (a key of :data:`WEIGHTS`); ``data``: the bytes sent (for "framing", the byte sent
    without its stop bit); ``bytes_idle``: a pause in byte times."""
    kind: str
    data: bytes = b""
    bytes_idle: int = 0

    def __str__(self):
        return f"{self.kind} {self.data.hex(' ') if self.data else self.bytes_idle}"


def request(rng: random.Random, vocab: int, k_max: int) -> bytes:
    kind = rng.choice(list(Request))
    if kind == Request.PROMPT:
        count = rng.randint(1, MAX_PROMPT_TOKENS)
        tokens = [rng.randrange(vocab + 2) if rng.random() < 0.1 else rng.randrange(vocab)
                  for _ in range(count)]
        return frame(kind, struct.pack(f"<{count}H", *tokens))
    if kind == Request.GENERATE:
        greedy = rng.random() < 0.5
        payload = struct.pack(GENERATE_FORMAT, rng.randint(0, MAX_COUNT), int(greedy) | rng.randrange(2) << 1,
                              rng.randrange(1 << 16), rng.randint(-128, 127), rng.randint(0, k_max + 2),
                              rng.randrange(1 << 32))
        return frame(kind, payload)
    return frame(kind)


def step(rng: random.Random, vocab: int, k_max: int, timeout_bytes: int) -> Step:
    kind = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    if kind == "request":
        return Step(kind, request(rng, vocab, k_max))
    if kind == "crc":
        damaged = bytearray(request(rng, vocab, k_max))
        damaged[rng.randrange(1, len(damaged))] ^= 1 << rng.randrange(8)
        return Step(kind, bytes(damaged))
    if kind == "kind":
        unknown = rng.choice([k for k in range(256) if k not in Request._value2member_map_])
        return Step(kind, frame(unknown, rng.randbytes(rng.randint(0, 8))))
    if kind == "length":
        wanted = rng.choice(list(Request))
        if wanted == Request.PROMPT:       # empty, odd or past the buffer
            length = rng.choice([0, 1, 3, 2 * MAX_PROMPT_TOKENS - 1, MAX_PAYLOAD + 2])
        else:
            length = rng.choice([n for n in range(1, 12) if n != struct.calcsize(GENERATE_FORMAT)])
        return Step(kind, frame(wanted, rng.randbytes(length)))
    if kind == "oversize":
        length = rng.randint(MAX_PAYLOAD + 1, 255)
        body = bytes([rng.choice(list(Request)), length]) + rng.randbytes(length)
        return Step(kind, bytes([SYNC]) + body + bytes([crc8(body)]))
    if kind == "truncated":
        whole = request(rng, vocab, k_max)
        return Step(kind, whole[:rng.randrange(1, len(whole))])
    if kind == "garbage":
        data = bytearray(rng.randbytes(rng.randint(1, 12)))
        if rng.random() < 0.5:
            data[rng.randrange(len(data))] = SYNC
        return Step(kind, bytes(data))
    if kind == "framing":
        return Step(kind, bytes([rng.randrange(256)]))
    if kind == "pause":
        return Step(kind, bytes_idle=rng.randint(1, 3 * timeout_bytes))
    return Step(kind)


def bursts(seed: int, count: int, *, vocab: int, k_max: int, timeout_bytes: int):
    """``count`` bursts of 1 to :data:`MAX_BURST` steps, each from its own generator (seeded by
    ``seed`` and its index, so burst i is the same whatever ran before it)."""
    for index in range(count):
        rng = random.Random(f"{seed}/{index}")
        yield [step(rng, vocab, k_max, timeout_bytes) for _ in range(rng.randint(1, MAX_BURST))]
