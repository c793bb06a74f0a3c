"""cocotb bench: AbsmaxQuantizer against model.numerics.absmax_quantize (seeded, with backpressure)."""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock

from hw.quantizer import AbsmaxQuantizer
from model.numerics import absmax_quantize
from sim.streams import StreamSink, StreamSource, reset


async def quantize_tokens(quantizer, src, sink, tokens):
    lanes = quantizer.lanes
    beats = []
    for token in tokens:
        rows = np.asarray(token).reshape(-1, lanes)
        beats += [{"data": r.tolist(), "last": i == len(rows) - 1} for i, r in enumerate(rows)]
    cocotb.start_soon(src.send(beats))
    got = await sink.receive(len(beats))
    start = 0
    for token in tokens:
        part = got[start:start + len(token) // lanes]
        start += len(part)
        q, m = absmax_quantize(token)
        codes = np.array([[int(v) for v in p.data] for p in part]).reshape(-1)
        assert (codes == q).all(), f"token {list(token)}: got {codes.tolist()}, expected {q.tolist()}"
        assert {int(p.peak) for p in part} == {m}
        assert [int(p.last) for p in part] == [0] * (len(part) - 1) + [1]


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def random_and_edge_tokens(dut):
    params = json.loads(os.environ["TB_PARAMS"])
    quantizer = AbsmaxQuantizer(**params)
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info(f"seed {cocotb.RANDOM_SEED}")
    # Created before reset so the inputs are driven idle from the start (Icarus starts them at X).
    src = StreamSource(dut, "i", quantizer.i.payload.shape(), rng, gap=0.3)
    sink = StreamSink(dut, "o", quantizer.o.payload.shape(), rng, stall=0.4)
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    nrng = np.random.default_rng(rng.getrandbits(32))
    width, lanes, beats_max = quantizer.width, quantizer.lanes, quantizer.depth
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    tokens = [np.zeros(lanes, dtype=np.int64), np.full(lanes * beats_max, lo),
              np.full(lanes * beats_max, hi), np.resize([lo, hi, 1, 0, -1], lanes * beats_max)]
    for _ in range(12):
        scale = 1 << int(nrng.integers(0, width))
        length = int(nrng.integers(1, beats_max + 1)) * lanes
        tokens.append(np.clip(nrng.integers(-scale, scale, length), lo, hi))
    await quantize_tokens(quantizer, src, sink, tokens)
