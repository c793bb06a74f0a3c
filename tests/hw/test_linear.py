# amaranth: UnusedElaboratable=no
"""TernaryLinear in the Amaranth simulator, bit for bit against model.integer.ternary_matmul."""

import random

import numpy as np
import pytest

from hw.linear import TernaryLinear
from hw.testing import run, stream_get, stream_put
from model.integer import ternary_matmul


def run_products(dut, jobs, seed, gap=0.0, stall=0.0):
    """Each job is (x [K] or None to keep the loaded one, matrix index); returns the results and,
    per job, the edges of its start transfer, of its last result's transfer and of each result's."""
    rng = random.Random(seed)
    results, edges = [], {"start": [], "end": [], "each": []}

    async def count(ctx):
        edge = 0
        async for _, _, sv, sr, ov, orr, last, mask in ctx.tick().sample(
                dut.start.valid, dut.start.ready, dut.o.valid, dut.o.ready, dut.o.payload.last,
                dut.o.payload.mask):
            if sv and sr:
                edges["start"].append(edge)
                edges["each"].append([])
            if ov and orr:
                edges["each"][-1] += [edge] * bin(mask).count("1")
            if ov and orr and last:
                edges["end"].append(edge)
            edge += 1

    async def put(ctx):
        for index, (x, matrix) in enumerate(jobs):
            if x is not None:
                words = -(-len(x) // dut.simd)
                padded = np.zeros(words * dut.simd, dtype=np.int64)
                padded[:len(x)] = x
                rows = padded.reshape(words, dut.simd)
                if hasattr(dut, "x_copy"):          # a part at a time, each in two writes of a random mask,
                    part = len(dut.x_copy.data)     # once the product before has finished
                    while ctx.get(dut.busy):
                        await ctx.tick()
                    for word, row in enumerate(rows):
                        for place in rng.sample(range(dut.simd // part), dut.simd // part):
                            codes = row[place * part:(place + 1) * part].tolist()
                            first = rng.getrandbits(part)
                            for mask in (first, ~first & ((1 << part) - 1)):
                                ctx.set(dut.x_copy, {"word": word, "part": place, "mask": mask,
                                                     "data": codes})
                                await ctx.tick()
                    ctx.set(dut.x_copy.mask, 0)
                else:
                    await stream_put(ctx, dut.x, [{"data": r.tolist(), "last": i == words - 1}
                                                  for i, r in enumerate(rows)], rng, gap)
            await stream_put(ctx, dut.start, [matrix], rng, gap)

    async def get(ctx):
        for _, matrix in jobs:
            n = dut.shapes[matrix][0]
            transfers = -(-n // dut.drain)
            got = await stream_get(ctx, dut.o, transfers, rng, stall)
            assert [bool(p.last) for p in got] == [False] * (transfers - 1) + [True]
            assert [int(p.mask) for p in got] == [(1 << min(dut.drain, n - i * dut.drain)) - 1
                                                  for i in range(transfers)]
            results.append(np.array([int(p.data[j]) for p in got for j in range(dut.drain)
                                     if p.mask >> j & 1]))

    budget = sum(4 * dut.cycles(m) + 20 * dut.shapes[m][1] for _, m in jobs) + 200
    run(dut, [put, get], background=[count], max_cycles=budget,
        vcd_name=f"linear_r{dut.rows}s{dut.simd}_{seed}")
    return results, edges


def expected(matrices, jobs):
    out, x = [], None
    for new_x, matrix in jobs:
        x = new_x if new_x is not None else x
        out.append(ternary_matmul(matrices[matrix], np.asarray(x)[:, None])[:, 0])
    return out


@pytest.mark.parametrize("rows, simd, x_part, drain, seed", [
    (4, 8, 0, 1, 1), (3, 4, 0, 1, 2), (8, 16, 0, 1, 3), (4, 8, 2, 1, 4), (3, 4, 4, 1, 5), (4, 8, 2, 4, 6),
    (8, 4, 0, 2, 7)])
def test_products_with_shared_activations_and_backpressure(rows, simd, x_part, drain, seed):
    """Shapes as in a layer (q, k, v share x) and odd ones: N, K not multiples of rows, simd; the
    buffer loaded from the x stream, or written a part of a word at a time (``x_part``); a result
    a transfer or ``drain``."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    shapes = [(24, 40), (8, 40), (8, 40), (40, 24), (5, 7), (1, 1), (33, 65)]
    matrices = [rng.integers(-1, 2, shape) for shape in shapes]
    dut = TernaryLinear(matrices, rows=rows, simd=simd, x_part=x_part, drain=drain)
    x40, x24, x7, x1, x65 = (rng.integers(-127, 128, k) for k in (40, 24, 7, 1, 65))
    jobs = [(x40, 0), (None, 1), (None, 2), (x24, 3), (x7, 4), (x1, 5), (x65, 6), (None, 6)]
    got, _ = run_products(dut, jobs, seed, gap=0.3, stall=0.3)
    for index, (g, want) in enumerate(zip(got, expected(matrices, jobs))):
        assert np.array_equal(g, want), f"job {index}"


def test_extremes():
    matrices = [np.ones((8, 32), dtype=np.int64), -np.ones((8, 32), dtype=np.int64),
                np.zeros((8, 32), dtype=np.int64)]
    dut = TernaryLinear(matrices, rows=4, simd=8)
    jobs = [(np.full(32, -127), 0), (None, 1), (None, 2), (np.full(32, 127), 1)]
    got, _ = run_products(dut, jobs, seed=0)
    for g, want in zip(got, expected(matrices, jobs)):
        assert np.array_equal(g, want)


@pytest.mark.parametrize("drain", [1, 2, 4])
def test_cycles_are_the_arrays(drain):
    rng = np.random.default_rng(4)
    matrices = [rng.integers(-1, 2, (16, 64)), rng.integers(-1, 2, (6, 20)), rng.integers(-1, 2, (9, 8))]
    dut = TernaryLinear(matrices, rows=4, simd=8, drain=drain)
    jobs = [(rng.integers(-127, 128, k), index) for index, (_, k) in enumerate(dut.shapes)]
    got, edges = run_products(dut, jobs, seed=0)
    for g, want in zip(got, expected(matrices, jobs)):
        assert np.array_equal(g, want)
    assert [e - s for s, e in zip(edges["start"], edges["end"])] == [dut.cycles(m) for _, m in jobs]
    assert [[e - s for e in each] for s, each in zip(edges["start"], edges["each"])] == [
        dut.result_cycles(m) for _, m in jobs]


@pytest.mark.parametrize("matrices, message", [
    ([], "at least one matrix"),
    ([np.full((2, 2), 2)], "matrix 0 must be a non-empty 2-D array of -1, 0, \\+1"),
])
def test_parameters_are_checked(matrices, message):
    with pytest.raises(ValueError, match=message):
        TernaryLinear(matrices, rows=2, simd=4)
