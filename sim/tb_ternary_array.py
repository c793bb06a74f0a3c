"""cocotb bench: TernaryArray against model.integer.ternary_matmul (seeded, with backpressure)."""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock

from hw.ternary_array import TernaryArray, assemble, tile_beats
from model.integer import ternary_matmul
from sim.streams import StreamSink, StreamSource, reset


def array_under_test() -> TernaryArray:
    return TernaryArray(**json.loads(os.environ["TB_PARAMS"]))


class ArrayBench:
    """The array's three streams, driven idle from before reset on (Icarus starts inputs at X)."""

    def __init__(self, dut, array, rng):
        self.array = array
        self.w = StreamSource(dut, "w", array.w_layout, rng)
        self.x = StreamSource(dut, "x", array.x_layout, rng)
        self.o = StreamSink(dut, "o", array.o_layout, rng)


async def matmul(bench, weights, acts, gap, stall):
    array, w_src, x_src, sink = bench.array, bench.w, bench.x, bench.o
    w_src.gap = x_src.gap = gap
    sink.stall = stall
    n, t = weights.shape[0], acts.shape[1]
    beats = tile_beats(weights, acts, array.rows, array.cols, array.simd)
    transfers = -(-n // array.rows) * -(-t // array.cols) * array.groups
    cocotb.start_soon(w_src.send([b[0] for b in beats]))
    cocotb.start_soon(x_src.send([{"data": b[1], "last": b[2]} for b in beats]))
    got = await sink.receive(transfers)
    outputs = [(int(p.row), [[int(v) for v in row] for row in p.data]) for p in got]
    assert [int(p.last) for p in got] == [int(i % array.groups == array.groups - 1) for i in range(transfers)]
    return assemble(outputs, n, t, array.rows, array.cols)


async def start(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info(f"seed {cocotb.RANDOM_SEED}")
    bench = ArrayBench(dut, array_under_test(), rng)
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    return bench, rng


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def random_matmuls_with_backpressure(dut):
    bench, rng = await start(dut)
    array = bench.array
    nrng = np.random.default_rng(rng.getrandbits(32))
    for _ in range(4):
        n = int(nrng.integers(1, 3 * array.rows + 2))
        t = int(nrng.integers(1, 3 * array.cols + 2))
        k = int(nrng.integers(1, array.k_max + 1))
        w, x = nrng.integers(-1, 2, (n, k)), nrng.integers(-128, 128, (k, t))
        y = await matmul(bench, w, x, gap=0.3, stall=0.4)
        assert (y == ternary_matmul(w, x)).all(), f"n={n} k={k} t={t}"


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def edge_cases(dut):
    """All +1/-1/0 weights, all activations -128 or +127, K = 1 and K = k_max, N and T not multiples."""
    bench, _ = await start(dut)
    array = bench.array
    n, t = array.rows + 1, array.cols + 1
    for k in (1, array.k_max):
        for w_value, x_value in ((1, 127), (-1, -128), (1, -128), (0, 127), (-1, 127)):
            w = np.full((n, k), w_value)
            x = np.full((k, t), x_value)
            y = await matmul(bench, w, x, gap=0.0, stall=0.0)
            assert (y == ternary_matmul(w, x)).all(), f"k={k} w={w_value} x={x_value}"
