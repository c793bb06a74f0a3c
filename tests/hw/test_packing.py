# amaranth: UnusedElaboratable=no
"""Packer and Unpacker in the Amaranth simulator: random vectors through each with random input
gaps and output stalls arrive whole, in order, with ``last`` on each vector's final beat."""

import random

import pytest
from amaranth import Module, Signal, signed

from hw.packing import Packer, Unpacker
from hw.testing import run, stream_get, stream_put


def vectors(rng, n, count, beats):
    return [[rng.randrange(-500, 500) for _ in range(n * beats)] for _ in range(count)]


@pytest.mark.parametrize("kind, n, ratio, seed", [
    ("pack", 1, 4, 1), ("pack", 3, 2, 2), ("pack", 2, 1, 3), ("unpack", 1, 4, 4),
    ("unpack", 4, 2, 5), ("unpack", 2, 1, 6)])
def test_vectors_arrive_whole_and_in_order(kind, n, ratio, seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = (Packer if kind == "pack" else Unpacker)(signed(10), n, ratio)
    width_in, width_out = (n, n * ratio) if kind == "pack" else (n * ratio, n)
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
    run(top, [put, get], max_cycles=2000, vcd_name=f"packing_{kind}_{seed}")
    want = [(b["data"], b["last"]) for vector in data for b in beats(vector, width_out)]
    assert got == want
