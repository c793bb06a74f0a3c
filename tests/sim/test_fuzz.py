"""The fuzzer's bursts (sim/fuzz.py): replayable from their seed and index, and each kind of step is
what it says (the SoC's side is tests/sim/test_soc_cocotb.py's fuzz slice)."""

import struct
from collections import Counter

from hw.protocol import GENERATE_FORMAT, MAX_PAYLOAD, REQUEST_LENGTHS, SYNC, Request, crc8
from sim.fuzz import MAX_BURST, WEIGHTS, bursts

SHAPE = dict(vocab=11, k_max=8, timeout_bytes=16)


def test_a_burst_replays_from_its_seed_and_index_alone():
    many = list(bursts(3, 40, **SHAPE))
    assert list(bursts(3, 40, **SHAPE)) == many
    assert list(bursts(3, 12, **SHAPE)) == many[:12]
    assert list(bursts(4, 40, **SHAPE)) != many
    assert all(1 <= len(burst) <= MAX_BURST for burst in many)


def test_every_kind_of_step_comes_and_is_what_it_says():
    steps = [step for burst in bursts(1, 400, **SHAPE) for step in burst]
    assert set(Counter(step.kind for step in steps)) == set(WEIGHTS)
    for step in steps:
        data = step.data
        body_ok = len(data) >= 4 and data[0] == SYNC and len(data) == data[2] + 4
        crc_ok = body_ok and crc8(data[1:-1]) == data[-1]
        if step.kind == "request":
            assert crc_ok and data[1] in Request._value2member_map_, step
        elif step.kind == "crc":                       # one bit flipped after the SYNC
            assert data[0] == SYNC and not crc_ok, step
        elif step.kind == "kind":
            assert crc_ok and data[1] not in Request._value2member_map_, step
        elif step.kind == "oversize":
            assert crc_ok and data[2] > MAX_PAYLOAD, step
        elif step.kind == "length":                    # a length its kind does not take
            length, wanted = data[2], REQUEST_LENGTHS[Request(data[1])]
            assert crc_ok and (length != wanted if wanted is not None else
                               length == 0 or length % 2 or length > MAX_PAYLOAD), step
        elif step.kind == "truncated":
            assert data[0] == SYNC and (len(data) < 3 or len(data) < data[2] + 4), step
        elif step.kind == "pause":
            assert not data and 1 <= step.bytes_idle <= 3 * SHAPE["timeout_bytes"], step
        elif step.kind == "framing":
            assert len(data) == 1, step
        elif step.kind == "reset":
            assert not data, step


def test_tokens_outside_the_vocabulary_and_top_k_above_the_samplers_come_up():
    prompts, generates = [], []
    for burst in bursts(2, 600, **SHAPE):
        for step in burst:
            if step.kind == "request" and step.data[1] == Request.PROMPT:
                prompts += struct.unpack(f"<{step.data[2] // 2}H", step.data[3:-1])
            if step.kind == "request" and step.data[1] == Request.GENERATE:
                generates.append(struct.unpack(GENERATE_FORMAT, step.data[3:-1]))
    assert max(prompts) >= SHAPE["vocab"] and min(prompts) < SHAPE["vocab"]
    assert max(top_k for *_, top_k, _ in generates) > SHAPE["k_max"]
