# amaranth: UnusedElaboratable=no
"""The whole Engine in the Amaranth simulator on tiny random models: every intermediate value of
every position equals model.integer's (taps), and the generated tokens equal
IntegerModel.generate's, greedy and sampled."""

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring

from hw.engine import Command, Engine, command
from hw.testing import run
from model.integer import tiny_model
from sim.engine_trace import compare, group_taps, model_trace
from sim.spi_flash import SpiFlashModel


def command_driver(engine, commands):
    """A testbench process that sends ``commands`` one at a time, each once the engine is idle."""
    async def drive(ctx):
        for payload in commands:
            ctx.set(engine.command.payload, payload)
            ctx.set(engine.command.valid, 1)
            await ctx.tick().until(engine.command.ready)
            ctx.set(engine.command.valid, 0)
            await ctx.tick()
            await ctx.tick().until(~engine.status.busy)
    return drive


def run_engine(engine, commands, expect_tokens, max_cycles, top=None):
    """Send ``commands`` (to ``engine`` inside ``top``, if given); return (generated tokens, taps)."""
    tokens, taps = [], []
    drive = command_driver(engine, commands)

    async def collect(ctx):
        ctx.set(engine.o.ready, 1)
        while len(tokens) < expect_tokens:
            _, _, valid, payload = await ctx.tick().sample(engine.o.valid, engine.o.payload)
            if valid:
                tokens.append(int(payload.token))

    async def watch(ctx):
        async for _, _, valid, tap in ctx.tick().sample(engine.tap.valid, engine.tap.payload):
            if valid:
                taps.append((int(tap.pc), int(tap.kind), [int(v) for v in tap.data],
                             int(tap.mant), int(tap.exp)))

    run(top or engine, [drive, collect], background=[watch], max_cycles=max_cycles,
        vcd_name="engine")
    return tokens, taps


def check_taps(engine, model, prompt, generated, taps):
    cache = model.new_cache()
    positions = group_taps(engine, taps)
    feed = list(prompt) + list(generated[:-1])
    assert len(positions) == len(feed), f"{len(positions)} positions tapped, {len(feed)} expected"
    problems = []
    for position, (token, engine_steps) in enumerate(zip(feed, positions)):
        expected = model_trace(model, cache, token)
        if position < len(prompt) - 1:
            del expected[(0, "norm")]       # the LM head runs only for the positions sampled
        problems += compare(engine_steps, expected, position)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("seed, overrides, params, temperature, top_k", [
    (1, {}, dict(rows=2, simd=8, lanes=2, attention_lanes=8, head_lanes=4), 0.0, None),
    (2, dict(hidden_act="silu", tie_word_embeddings=False, num_attention_heads=4,
             num_key_value_heads=2, num_hidden_layers=2), dict(rows=3, simd=4, lanes=2), 0.8, 3),
    (3, dict(num_attention_heads=4, num_key_value_heads=4, intermediate_size=32),
     dict(rows=4, simd=16, lanes=4, attention_lanes=4, head_lanes=16, norm_ratio=2, dequantizer_units=4),
     1.0, None),
    # the results four a cycle out of the array, through RoPE and the head quantizer, into a
    # Dequantizer of two units (head_dim 8: four divides its half)
    (4, dict(num_attention_heads=2, num_key_value_heads=2, intermediate_size=32),
     dict(rows=4, simd=16, lanes=4, attention_lanes=4, head_lanes=16, output_lanes=4, dequantizer_units=2),
     0.0, None),
])
def test_engine_matches_integer_model(tmp_path, seed, overrides, params, temperature, top_k):
    print(f"seed {seed}")
    model = tiny_model(tmp_path, seed, **overrides)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(0, model.config.vocab_size, 3).tolist()
    count = 4
    expected = model.generate(prompt, count, temperature=temperature, seed=seed, top_k=top_k)
    engine = Engine(model, taps=True, k_max=4, **params)
    assert engine.output_lanes == params.get("output_lanes", 2)
    if "output_lanes" in params:       # the array's tiles leave that many results a cycle
        assert engine.linear.drain == params["output_lanes"]
    commands = ([command(Command.RESET)] + [command(Command.TOKEN, token=t) for t in prompt]
                + [command(Command.GENERATE, count=count, temperature=temperature, top_k=top_k,
                           seed=seed)])
    tokens, taps = run_engine(engine, commands, count, max_cycles=200_000)
    check_taps(engine, model, prompt, tokens, taps)
    assert tokens == expected


def test_stop_waits_for_the_token_on_offer(tmp_path):
    """``stop`` while a token waits to be taken: that token keeps ``last`` low (a payload holds
    until it is taken) and the next one is the last; the generation ends there."""
    model = tiny_model(tmp_path, 1)
    engine = Engine(model, rows=2, simd=8, lanes=2, k_max=4)
    expected = model.generate([3], 2)
    got = []

    drive = command_driver(engine, [command(Command.RESET), command(Command.TOKEN, token=3),
                                    command(Command.GENERATE, count=5)])

    async def collect(ctx):
        await ctx.tick().until(engine.o.valid)
        for _ in range(3):
            await ctx.tick()                              # the token waits
        ctx.set(engine.status.stop, 1)
        await ctx.tick()
        ctx.set(engine.status.stop, 0)
        for _ in range(3):
            assert (ctx.get(engine.o.valid), ctx.get(engine.o.payload.last)) == (1, 0)
            await ctx.tick()
        while len(got) < 2:
            ctx.set(engine.o.ready, 1)
            _, _, valid, payload = await ctx.tick().sample(engine.o.valid, engine.o.payload)
            if valid:
                got.append((int(payload.token), int(payload.last)))
        ctx.set(engine.o.ready, 0)
        await ctx.tick().until(~engine.status.busy)
        assert ctx.get(engine.status.tokens) == 2

    run(engine, [drive, collect], max_cycles=100_000, vcd_name="engine_stop")
    assert got == [(expected[0], 0), (expected[1], 1)]


def test_engine_loads_its_weights_from_spi_flash(tmp_path):
    """The UP5K way: weights in a RAM filled from (a model of) SPI flash at boot."""
    model = tiny_model(tmp_path, 4)
    prompt, count, offset = [3, 1], 3, 37
    engine = Engine(model, rows=2, simd=8, lanes=4, flash_offset=offset, taps=True)
    top = Module()
    top.submodules.engine = engine
    top.submodules.flash = flash = SpiFlashModel(bytes(offset) + engine.flash_image())
    wiring.connect(top, engine.flash, flash.spi)
    commands = [command(Command.TOKEN, token=t) for t in prompt] + [command(Command.GENERATE,
                                                                          count=count)]
    tokens, taps = run_engine(engine, commands, count, max_cycles=400_000, top=top)
    check_taps(engine, model, prompt, tokens, taps)
    assert tokens == model.generate(prompt, count)


@pytest.mark.parametrize("sizes, message", [
    (dict(rows=0, simd=8, lanes=1), r"^rows must be a positive integer, not 0$"),
    (dict(rows=4, simd=16, lanes=1),
     r"^simd must divide intermediate_size 24, not 16; \[1, 2, 3, 4, 6, 8, 12, 24\] would$"),
    (dict(rows=4, simd=8, lanes=2, attention_lanes=3),
     r"^attention_lanes must divide head_dim 8 and be a multiple of lanes 2, not 3; \[2, 4, 8\] would$"),
    (dict(rows=4, simd=4, lanes=2, head_lanes=4, norm_ratio=4),
     r"^norm_ratio must be one of \[1, 2\] at 2 lanes \(lanes · norm_ratio divides simd 4, head_lanes 4, "
     r"hidden_size 16, intermediate_size 24\), not 4$"),
    (dict(rows=4, simd=8, lanes=4, dequantizer_units=3),
     r"^dequantizer_units must divide lanes 4, not 3; \[1, 2, 4\] would$"),
    (dict(rows=4, simd=8, lanes=2, output_lanes=4),
     r"^output_lanes must divide lanes 2, not 4; \[1, 2\] would$"),
], ids=["rows_zero", "simd_not_dividing", "attention_lanes_not_dividing", "norm_ratio_not_dividing",
        "dequantizer_units_not_dividing", "output_lanes_not_dividing"])
def test_engine_sizes_refused_in_one_line(tmp_path, sizes, message):
    model = tiny_model(tmp_path, 1)
    with pytest.raises(ValueError, match=message):
        Engine(model, **sizes)
