# amaranth: UnusedElaboratable=no
"""VectorEngine in the Amaranth simulator: tokens of the shipped small model, every step in
gateware (the vector core's programs, the array's matmuls, attention on the vector unit or on the
attention unit), logits equal to IntegerModel.step, cycles equal to VectorEngine.cycles."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.vector_core import Program
from hw.vector_engine import VectorEngine
from hw.vector_isa import Call, Function, VectorOp
from hw.vector_programs import ProgramModel
from model import paths
from model.integer import IntegerModel, tiny_model
from tests.hw.test_vector_core import load_and_start
from tests.hw.test_vector_unit import read_memory


@pytest.mark.parametrize("rows, simd, lanes, attention_lanes, head_lanes", [
    (8, 16, 2, None, None), (4, 8, 1, 1, 1), (8, 16, 4, 2, 8)])
def test_tokens_of_the_small_model(rows, simd, lanes, attention_lanes, head_lanes):
    """``attention_lanes`` None: attention and the LM head as vector-unit programs (one token: the
    same instructions over more positions are the VectorMachine's, tests/hw/test_vector_isa.py);
    else on the attention unit and the token table (the small model's is tied: one table for both
    uses): two tokens at one lane (attention over a cached position), one at the wider lanes (the
    untied model below runs three tokens on them too)."""
    model = IntegerModel.from_checkpoint(paths.MODELS / "small")
    tokens = [7] if attention_lanes is None else [18, 43] if lanes == 1 else [30]
    check_tokens(model, tokens, rows, simd, lanes, attention_lanes, head_lanes)


def test_tokens_of_an_untied_model(tmp_path):
    """A random untied model (two token tables: the embedding's and the LM head's), 3 kv heads."""
    model = tiny_model(tmp_path, 3, hidden_size=24, intermediate_size=40, num_attention_heads=3,
                       num_key_value_heads=3, num_hidden_layers=2, tie_word_embeddings=False)
    check_tokens(model, [5, 9, 2], 4, 8, 2, 2, 4)


def check_tokens(model, tokens, rows, simd, lanes, attention_lanes, head_lanes):
    """The tokens on the engine, each token's logits == IntegerModel.step's and each run's cycles
    == VectorEngine.cycles: on the attention unit and the token table (``attention_lanes`` given),
    one run a token of the one program, ``token`` and ``position`` its inputs; else the tokens'
    programs as one run."""
    vocab = model.config.vocab_size
    units = attention_lanes is not None
    programs, cache = ProgramModel(model, units=units), model.new_cache()
    if units:
        program = programs.token_program(0, 0)
        runs = [(token, position) for position, token in enumerate(tokens)]
        logits_at = [programs.layout["logits"]] * len(tokens)
    else:
        pitch = -(-vocab // programs.layout.align) * programs.layout.align
        saved = programs.layout.add("saved logits", len(tokens) * pitch)
        program, runs = [], [(0, 0)]
        for position, token in enumerate(tokens):     # each token's logits kept where the next leaves them
            program += programs.token_program(token, position)
            program.append(VectorOp(vocab, programs.layout["logits"], saved + position * pitch, Function.ADD))
        logits_at = [saved + position * pitch for position in range(len(tokens))]
    # one program for every token: the matmuls' results in a memory of their own, the detached ones
    # landing while the core goes on; the all-vector programs: one scratchpad, every call waited for
    sizes = programs.memories(lanes) if units else {"depth": -(-programs.layout.size // lanes) * lanes}
    engine = VectorEngine(model, Program(program, registers=256, names=programs.registers, **sizes),
                          rows=rows, simd=simd, lanes=lanes, attention_lanes=attention_lanes or 1,
                          head_lanes=head_lanes or 1)
    number = engine.core.program.number
    got = {"cycles": [], "logits": []}

    async def testbench(ctx):
        for run, (token, position) in enumerate(runs):
            ctx.set(engine.token, token)
            ctx.set(engine.position, position)
            if run == 0:
                await load_and_start(ctx, engine, number, programs.memory, programs.registers)
            else:
                ctx.set(engine.start, 1)
                await ctx.tick()
                ctx.set(engine.start, 0)
            cycles = 1
            while ctx.get(engine.busy):
                await ctx.tick()
                cycles += 1
                assert cycles < 3_000_000, "the engine did not finish"
            assert ctx.get(engine.done) and not ctx.get(engine.error), run
            got["cycles"].append(cycles)
            if units:
                got["logits"].append(await read_memory(ctx, engine, logits_at[run], vocab))
        if not units:
            got["logits"] = [await read_memory(ctx, engine, address, vocab) for address in logits_at]

    sim = Simulator(engine)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for position, token in enumerate(tokens):
        logits, _ = model.step(token, cache)
        assert np.array_equal(got["logits"][position], logits), position
    assert got["cycles"] == [engine.cycles(position) for _, position in runs]
    where = (f"the attention unit ({attention_lanes} lanes) and the token table ({head_lanes})" if units
             else "the vector unit")
    print(f"{len(tokens)} tokens in {sum(got['cycles']):,} cycles ({rows}×{simd} array, {lanes} lanes, "
          f"attention and LM head on {where})")


def test_codes_must_start_on_a_readable_row_part():
    model = IntegerModel.from_checkpoint(paths.MODELS / "small")
    program = Program([Call("matmul", (0, "q_proj", 128), memory=((2, model.config.hidden_size),))],
                      registers=8, depth=256)
    with pytest.raises(ValueError, match="a matmul call reads x at 2, where it must start on a multiple "
                                         "of 4"):
        VectorEngine(model, program, rows=4, simd=8, lanes=4)
    with pytest.raises(ValueError, match=r"attention_lanes must divide the head size 16, not 3; "
                                         r"\[1, 2, 4, 8, 16\]"):
        VectorEngine(model, program, rows=4, simd=8, lanes=4, attention_lanes=3)
