# amaranth: UnusedElaboratable=no
"""VectorCore in the Amaranth simulator: each step's programs run from its ROM by its own
sequencer, scratchpad and registers equal to VectorMachine's; errors stop a run where the machine
raises; cycles as documented."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.vector_core import Program, VectorCore
from hw.vector_isa import Amount, BSource, Function, ProgramError, ScalarKind as S, ScalarOp, VectorMachine, VectorOp
from tests.hw.test_vector_unit import PROGRAM_CASES

DEPTH, REGISTERS = 512, 64


def run_core(core: VectorCore, memory: dict, registers: dict, limit: int = 200_000) -> dict:
    """Load ``memory`` and ``registers``, run the core's program, read everything back:
    {"memory", "registers" (name: value or (mant, exp)), "error", "pc", "cycles"}."""
    program = core.program
    result = {}

    async def testbench(ctx):
        for address, values in memory.items():
            for offset, value in enumerate(np.asarray(values).ravel()):
                ctx.set(core.access, {"addr": address + offset, "data": int(value), "write": 1})
                await ctx.tick()
        ctx.set(core.access.write, 0)
        for name, value in registers.items():
            data = {"value": value[0], "exp": value[1]} if isinstance(value, tuple) else {"value": value, "exp": 0}
            ctx.set(core.register, {"addr": program.number[name], "data": data, "write": 1})
            await ctx.tick()
        ctx.set(core.register.write, 0)
        ctx.set(core.start, 1)
        await ctx.tick()
        ctx.set(core.start, 0)
        cycles = 1
        while ctx.get(core.busy):
            await ctx.tick()
            cycles += 1
            assert cycles < limit, "the core did not finish"
        result.update(error=ctx.get(core.error), pc=ctx.get(core.pc), cycles=cycles, done=ctx.get(core.done))
        result["memory"] = []
        for address in range(program.depth):
            ctx.set(core.access.addr, address)
            await ctx.tick()
            result["memory"].append(ctx.get(core.access_data))
        result["registers"] = {}
        for name, number in program.number.items():
            ctx.set(core.register.addr, number)
            await ctx.tick()
            result["registers"][name] = (ctx.get(core.register_data.value), ctx.get(core.register_data.exp))

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
                                         ScalarOp(S.MUL_INT, "p", "big", "x"), ScalarOp(S.MUL_INT, "p", "big", "wide")])
    assert got["error"] and got["pc"] == 5


def test_register_count_is_checked():
    with pytest.raises(ValueError, match="names 3 registers; a core of 2 holds it with registers=3 or more"):
        Program([ScalarOp(S.MAX, "a", "b", "c")], registers=2, depth=16)
