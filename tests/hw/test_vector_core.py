# amaranth: UnusedElaboratable=no
"""VectorCore in the Amaranth simulator: each step's programs run from its ROM by its own
sequencer, scratchpad and registers equal to VectorMachine's; errors stop a run where the machine
raises; cycles as documented."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.scalar_unit import register_value
from hw.vector_core import Program, VectorCore
from hw.vector_programs import ProgramModel
from hw.vector_isa import (Amount, BSource, Function, Part, ProgramError, ScalarKind as S, ScalarOp,
                           VectorMachine, VectorOp)
from model import paths
from model.integer import IntegerModel
from tests.hw.test_vector_unit import PROGRAM_CASES, read_memory, write_memory

DEPTH, REGISTERS = 512, 64


async def load_and_start(ctx, dut, number: dict, memory: dict, registers: dict) -> None:
    """``memory`` ({address: values}) and ``registers`` (name: value or (mant, exp), numbered by
    ``number``) into a VectorCore or a VectorEngine through its ports, then a run started."""
    for address, values in memory.items():
        await write_memory(ctx, dut, address, values)
    for name, value in registers.items():
        ctx.set(dut.register, {"addr": number[name], "data": register_value(value), "write": 1})
        await ctx.tick()
    ctx.set(dut.register.write, 0)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


async def read_register(ctx, core: VectorCore, number: int) -> tuple[int, int]:
    ctx.set(core.register.addr, number)
    await ctx.tick()
    return ctx.get(core.register_data.value), ctx.get(core.register_data.exp)


def run_core(core: VectorCore, memory: dict, registers: dict, serve=None, limit: int = 200_000,
             read_back: bool = True) -> dict:
    """Load ``memory`` and ``registers``, run the core's program (its calls answered by ``serve``, as
    VectorMachine.run's), and read everything back: {"memory", "registers" (name: (value, exp)),
    "error", "pc", "done", "cycles" (the core's own, calls not counted)}."""
    program = core.program
    result = {}

    async def testbench(ctx):
        await load_and_start(ctx, core, program.number, memory, registers)
        cycles = 1
        while ctx.get(core.busy):
            if ctx.get(core.call.valid):
                call = program.calls[ctx.get(core.call.payload)]
                ctx.set(core.call.ready, 1)
                await ctx.tick()
                ctx.set(core.call.ready, 0)
                regions = [await read_memory(ctx, core, address, n) for address, n in call.memory]
                values = {}
                for name in call.reads:
                    value, exp = await read_register(ctx, core, program.number[name])
                    values[name] = (value, exp)
                for address, data in serve(call, regions, values):
                    await write_memory(ctx, core, address, data)
                ctx.set(core.resume, 1)
                await ctx.tick()
                ctx.set(core.resume, 0)
                cycles += 2
                continue
            await ctx.tick()
            cycles += 1
            assert cycles < limit, "the core did not finish"
        result.update(error=ctx.get(core.error), pc=ctx.get(core.pc), cycles=cycles, done=ctx.get(core.done))
        if read_back:
            result["memory"] = (await read_memory(ctx, core, 0, program.depth)).tolist()
            result["registers"] = {name: await read_register(ctx, core, number)
                                   for name, number in program.number.items()}

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return result


def machine_run(memory: dict, registers: dict, program) -> tuple[VectorMachine, int | None]:
    """The machine's run: its state, and the index of the instruction that raised (None: none)."""
    machine = VectorMachine(DEPTH)
    machine.registers = dict(registers)
    for address, values in memory.items():
        machine.write(address, values)
    for index, op in enumerate(program):
        try:
            machine.run([op])
        except ProgramError:
            return machine, index
    return machine, None


def check_core(lanes: int, memory: dict, registers: dict, program, sigmoid=False) -> dict:
    machine, failed = machine_run(memory, registers, program)
    core = VectorCore(Program(program, registers=REGISTERS, depth=DEPTH, names=registers), lanes=lanes,
                      sigmoid=sigmoid)
    got = run_core(core, memory, registers)
    assert got["error"] == (failed is not None)
    if failed is not None:
        assert got["pc"] == failed
    else:
        assert got["done"] and got["cycles"] == core.cycles()
    assert got["memory"] == machine.memory
    for name, value in machine.registers.items():
        have = got["registers"][name]
        assert (have if isinstance(value, tuple) else have[0]) == value, (name, have, value)
    return got


@pytest.mark.parametrize("case, lanes", [("rms_quantize", 1), ("rms_quantize", 4), ("heads_rope_residual", 2),
                                         ("gated_relu2", 1), ("gated_silu", 4), ("attend_lm_head", 1),
                                         ("attend_lm_head", 4)])
def test_programs(case, lanes):
    seed = 100 + 10 * lanes + len(case)
    print(f"seed {seed}")
    memory, registers, program, sigmoid = PROGRAM_CASES[case](seed)
    check_core(lanes, memory, registers, program, sigmoid)


def test_errors_stop_the_run():
    """A pass the machine refuses (a b register outside the b port), then a scalar operation (a
    product outside a register): the run stops at it, with what came before done."""
    first = [ScalarOp(S.INT, "x", exp=Amount(offset=5)), ScalarOp(S.STORE, a="x", address=3),
             ScalarOp(S.INT, "wide", exp=Amount(offset=1 << 20))]
    got = check_core(2, {0: [1, 2, 3, 4]}, {}, first + [
        VectorOp(4, 0, 8, Function.MUL, BSource.REGISTER, "wide"), ScalarOp(S.STORE, a="x", address=9)])
    assert got["error"] and got["pc"] == 3
    got = check_core(1, {}, {}, first + [ScalarOp(S.INT, "big", exp=Amount(offset=(1 << 35) - 1)),
                                         ScalarOp(S.MUL_INT, "p", "big", "x"),
                                         ScalarOp(S.MUL_INT, "p", "big", "wide")])
    assert got["error"] and got["pc"] == 5


@pytest.mark.parametrize("far", [(1 << 16) + 5, -(1 << 16), (1 << 11) + 1, -(1 << 11) - 1, 100, -9])
def test_shift_amounts_of_every_part(far):
    """A pass's shifts from a register's value, its positive or negative part, or a scale's
    exponent, the register far outside any shift or near the edge of what the core keeps of it:
    the same as the machine (a pass that fails stops the run at it)."""
    registers = {"far": far, "s": (40000, -20), "one": 1}
    program = [VectorOp(4, 0, 8, Function.ADD, shift=Amount("far", sign, offset, part))
               for sign, offset, part in ((1, -3, Part.ALL), (-1, 5, Part.ALL), (2, 0, Part.POSITIVE),
                                          (-2, 1, Part.NEGATIVE))]
    program.append(VectorOp(4, 0, 12, Function.MUL, BSource.REGISTER, "s",
                            shift=Amount("s", -1, -25, Part.EXPONENT)))
    for op in program:
        check_core(2, {0: [1 << 10, -(1 << 10), 3, -3]}, registers, [op])


@pytest.mark.parametrize("b", [270549121, 270549122, -270549121, -270549122])
def test_code_b_times_127_at_the_a_ports_edge(b):
    """CODE's b·127 fits the a port's 36 bits up to |b| = 270,549,121 (the core compares b with
    that bound instead of multiplying): one more and the pass fails, as in the machine."""
    check_core(1, {0: [1, -1, 0, 2]}, {"r": b},
               [VectorOp(4, 0, 8, Function.CODE, BSource.REGISTER, "r", shift=Amount(offset=40))])


def test_register_count_is_checked():
    with pytest.raises(ValueError, match=r"names 3 registers; a core of 3 holds it with registers=4 or more "
                                         r"\(register 0 is none\)"):
        Program([ScalarOp(S.MAX, "a", "b", "c")], registers=3, depth=16)


def test_only_a_pass_a_reads_the_results_memory():
    """Addresses from depth on are the results memory: a pass's a may read there, nothing else."""
    Program([VectorOp(8, 16, 0, Function.ADD)], registers=2, depth=16, results=8)
    for op in (VectorOp(4, 0, 18, Function.ADD), VectorOp(4, 0, 0, Function.MUL, BSource.VECTOR, 16),
               VectorOp(4, 0, 0, Function.ADD, c=20)):
        with pytest.raises(ValueError, match="outside the scratchpad's 16 elements \\(only its a may"):
            Program([op], registers=2, depth=16, results=8)
    with pytest.raises(ValueError, match="reads a outside the results memory's 8 elements"):
        Program([VectorOp(4, 22, 0, Function.ADD)], registers=2, depth=16, results=8)
    with pytest.raises(ValueError, match="a results memory of 32 elements: at most the scratchpad's 16"):
        Program([], registers=2, depth=16, results=32)


@pytest.mark.parametrize("lanes", [2])
def test_whole_tokens_of_the_small_model(lanes):
    """Tokens of the shipped small model as one run of the core (the array's products served by the
    testbench): every traced step, the logits and their scale == IntegerModel.step."""
    model = IntegerModel.from_checkpoint(paths.MODELS / "small")
    programs, cache = ProgramModel(model), model.new_cache()
    tokens = [18, 43]
    want, got = [], []
    for token in tokens:
        model.step(token, cache, lambda layer, step, **values: want.append((layer, step, values)))
    program = [op for position, token in enumerate(tokens) for op in programs.token_program(token, position)]
    depth = -(-programs.layout.size // lanes) * lanes
    core = VectorCore(Program(program, registers=256, depth=depth, names=programs.registers), lanes=lanes)
    programs._trace = lambda layer, step, **values: got.append((layer, step, values))
    result = run_core(core, programs.memory, programs.registers, programs.serve, limit=2_000_000,
                      read_back=False)
    assert result["done"] and not result["error"] and result["cycles"] == core.cycles()
    assert [(layer, step) for layer, step, _ in got] == [(layer, step) for layer, step, _ in want]
    for (layer, step, values), (_, _, expected) in zip(got, want):
        for name, value in expected.items():
            have = values[name]
            if isinstance(value, tuple):
                assert [np.asarray(v).tolist() for v in have] == [np.asarray(v).tolist() for v in value], \
                    (layer, step)
            else:
                assert np.array_equal(have, value), (layer, step, name)
    print(f"{len(tokens)} tokens, {result['cycles']:,} cycles at {lanes} lanes (calls not counted)")
