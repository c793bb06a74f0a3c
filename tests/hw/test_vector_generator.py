# amaranth: UnusedElaboratable=no
"""VectorGenerator in the Amaranth simulator: prompts and generations through the Engine's
commands, greedy and sampled, tokens equal to IntegerModel.generate."""

import pytest
from amaranth.sim import Simulator

from hw.engine import Command, command
from hw.testing import stream_get, stream_put
from hw.vector_generator import VectorGenerator
from model import paths
from model.integer import IntegerModel, tiny_model


def test_generations(tmp_path):
    """A greedy generation, a RESET, then a sampled one (temperature, top-k, seed), each after a
    prompt; then a stop request cuts a generation short. On a random model of two layers (the
    shipped small model behind the UART: tests/sim/test_soc_cocotb.py)."""
    model = tiny_model(tmp_path, 7, vocab_size=23, hidden_size=32, intermediate_size=48,
                       num_hidden_layers=2, max_position_embeddings=16)
    cases = [([18, 4], 2, {}), ([7], 3, {"temperature": 0.8, "top_k": 5, "seed": 11})]
    want = [model.generate(prompt, count, **options) for prompt, count, options in cases]
    dut = VectorGenerator(model, rows=4, simd=8, lanes=2, attention_lanes=4, head_lanes=8, k_max=8)
    got, positions = [], []

    async def testbench(ctx):
        for prompt, count, options in cases:
            await stream_put(ctx, dut.command, [command(Command.RESET)]
                             + [command(Command.TOKEN, token=t) for t in prompt]
                             + [command(Command.GENERATE, count=count, **options)])
            beats = await stream_get(ctx, dut.o, count)
            got.append([beat.token for beat in beats])
            assert [beat.last for beat in beats] == [0] * (count - 1) + [1]
            await ctx.tick().until(~dut.status.busy)
            positions.append(ctx.get(dut.status.position))
            assert not ctx.get(dut.status.error)
        # a stop during a generation of 5: the next token out is the last
        await stream_put(ctx, dut.command, [command(Command.GENERATE, count=5)])
        ctx.set(dut.status.stop, 1)
        await ctx.tick()
        ctx.set(dut.status.stop, 0)
        beats = await stream_get(ctx, dut.o, 1)
        assert beats[0].last
        await ctx.tick().until(~dut.status.busy)
        assert ctx.get(dut.status.tokens) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got == want
    assert positions == [len(prompt) + count - 1 for prompt, count, _ in cases]


def test_sizes_are_checked():
    model = IntegerModel.from_checkpoint(paths.MODELS / "small")
    with pytest.raises(ValueError, match=r"head_lanes must divide the hidden size 64, not 5"):
        VectorGenerator(model, rows=4, simd=8, lanes=1, head_lanes=5)
