# amaranth: UnusedElaboratable=no
"""Packer in the Amaranth simulator: random vectors with random input gaps and output stalls
arrive whole, in order, with ``last`` on each vector's final beat."""

import random

import pytest
from amaranth import Module, Signal, signed

from hw.packing import Packer
from hw.testing import run, stream_get, stream_put


def vectors(rng, n, count, beats):
    return [[rng.randrange(-500, 500) for _ in range(n * beats)] for _ in range(count)]


@pytest.mark.parametrize("n, ratio, seed", [(1, 4, 1), (3, 2, 2), (2, 1, 3)])
def test_vectors_arrive_whole_and_in_order(n, ratio, seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = Packer(signed(10), n, ratio)
    width_in, width_out = n, n * ratio
    data = vectors(rng, n * ratio, 5, rng.randrange(1, 4))
    got = []

    def beats(vector, width):
        words = [vector[i:i + width] for i in range(0, len(vector), width)]
        return [{"data": w, "last": i == len(words) - 1} for i, w in enumerate(words)]

    async def put(ctx):
        for vector in data:
            await stream_put(ctx, dut.i, beats(vector, width_in), rng, 0.3)

    async def get(ctx):
        total = sum(len(v) for v in data) // width_out
        for payload in await stream_get(ctx, dut.o, total, rng, 0.3):
            got.append(([int(x) for x in payload.data], bool(payload.last)))

    top = Module()          # a clock domain even where the converter is only wires (ratio 1)
    top.submodules.dut = dut
    top.d.sync += Signal().eq(1)
    run(top, [put, get], max_cycles=2000, vcd_name=f"packing_{seed}")
    want = [(b["data"], b["last"]) for vector in data for b in beats(vector, width_out)]
    assert got == want
