# amaranth: UnusedElaboratable=no
"""VectorUnit in the Amaranth simulator running the vector programs (hw.vector_programs) pass for
pass, its scratchpad and reductions equal to VectorMachine's; the scalar operations between the
passes run in Python (the testbench is the sequencer)."""

import functools

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw import vector_programs as vp
from hw.testing import stream_get, stream_put
from hw.vector_isa import (ELEMENT_BITS, BSource, Function, PassConfig, ProgramError, Reduce, ScalarKind,
                           VectorMachine, VectorOp)
from hw.vector_lane import config_of
from hw.vector_unit import VectorUnit, reduction_of
from model import numerics as nx
from model.integer import Gain, RowScaledInt8

DEPTH = 1024


def pass_payload(op: VectorOp, registers: dict) -> dict:
    config = PassConfig.of(op, registers)
    return {"config": config_of(op, config), "n": op.n, "a": op.a,
            "b": op.b if op.b_source is BSource.VECTOR else 0, "c": op.c or 0, "dst": op.dst or 0,
            "c_vector": op.c is not None, "write": op.dst is not None, "reduce": reduction_of(op),
            "b_period": op.b_period or 0, "follows": int(op.follows)}


async def write_memory(ctx, dut, address: int, values) -> None:
    """``values`` into the scratchpad from ``address``, through ``dut``'s ``access`` port (a
    VectorUnit's, a VectorCore's or a VectorEngine's)."""
    for offset, value in enumerate(np.asarray(values).ravel()):
        ctx.set(dut.access, {"addr": address + offset, "data": int(value), "write": 1})
        await ctx.tick()
    ctx.set(dut.access.write, 0)


async def read_memory(ctx, dut, address: int, n: int) -> np.ndarray:
    """``n`` elements of the scratchpad from ``address``, through ``dut``'s ``access`` port."""
    values = []
    for offset in range(n):
        ctx.set(dut.access.addr, address + offset)
        await ctx.tick()
        values.append(ctx.get(dut.access_data))
    return np.array(values, dtype=np.int64)


def run_on_unit(unit: VectorUnit, memory: dict, registers: dict, program) -> tuple[list, dict]:
    """The program on the unit after ``memory`` ({address: values}) is written; returns the
    scratchpad and the registers."""
    shadow = VectorMachine(unit.depth)
    shadow.registers = dict(registers)

    async def testbench(ctx):
        for address, values in memory.items():
            await write_memory(ctx, unit, address, values)
        for op in program:
            if isinstance(op, VectorOp):
                await stream_put(ctx, unit.i, [pass_payload(op, shadow.registers)])
                [result] = await stream_get(ctx, unit.o, 1)
                if result.error:
                    raise ProgramError(f"the unit flags {op.note or op}")
                if op.reduce:
                    shadow.registers[op.reduce[0][1]] = result.value
            elif op.kind is ScalarKind.STORE:
                await write_memory(ctx, unit, op.address, [shadow.registers[op.a]])
            elif op.kind is ScalarKind.LOAD:
                shadow.registers[op.result] = int((await read_memory(ctx, unit, op.address, 1))[0])
            else:
                shadow.run([op])
        shadow.memory = (await read_memory(ctx, unit, 0, unit.depth)).tolist()

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return shadow.memory, shadow.registers


def check_program(lanes: int, memory: dict, registers: dict, program, sigmoid=False):
    machine = VectorMachine(DEPTH)
    machine.registers = dict(registers)
    for address, values in memory.items():
        machine.write(address, values)
    machine.run(program)
    unit = VectorUnit(lanes=lanes, depth=DEPTH, sigmoid=sigmoid)
    got_memory, got_registers = run_on_unit(unit, memory, registers, program)
    assert got_memory == machine.memory
    assert got_registers == machine.registers


def constants() -> dict:
    m = VectorMachine(1)
    m.run(vp.constants())
    return m.registers


def rms_case(seed: int) -> tuple:
    """(memory, registers, program, sigmoid) of one program case: here a norm over 40 elements."""
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.integers(-(1 << 31), 1 << 31, n) >> rng.integers(0, 31, n)
    gain = Gain.from_float(rng.normal(1.0, 0.5, n))
    registers = {**constants(), "xs": nx.RES_UNIT, "inv_len": gain.inv_len, "eps": nx.scale_from_float(1e-5)}
    registers = {k: (int(v[0]), int(v[1])) if isinstance(v, tuple) else v for k, v in registers.items()}
    program = vp.rms_quantize(0, n, "xs", 64, gain.exp, "inv_len", "eps", 128, 192, "out")
    return {0: x, 64: gain.values}, registers, program, False


def heads_rope_residual_case(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    heads, d = 2, 8
    acc = rng.integers(-(1 << 15), 1 << 15, heads * d)
    cos, sin = nx.rope_int_tables(d, 10000.0, 16)
    h = rng.integers(-(1 << 31), 1 << 31, heads * d)
    registers = {**constants(), "acc_scale": (40000, -30), "res": (50000, -20)}
    program = (vp.rope(0, heads, d, 32, 48, 64, 96) + vp.quantize_heads(96, heads, d, "acc_scale", 128, "hs")
               + vp.dequantize_add(0, heads * d, "res", 160, 192))
    return {0: acc, 32: cos[5], 48: sin[5], 160: h}, registers, program, False


def gated_case(seed: int, kind: str) -> tuple:
    rng = np.random.default_rng(seed)
    n = 24
    gate, up = rng.integers(-(1 << 17), 1 << 17, n), rng.integers(-(1 << 17), 1 << 17, n)
    registers = {**constants(), "gs": (45000, -25), "us": (50000, -22)}
    return {0: gate, 32: up}, registers, vp.gated(0, 32, n, "gs", "us", kind, 64, 96, "out"), kind == "silu"


def attend_lm_head_case(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    d, positions, vocab = 8, 5, 6
    q, keys, values = (rng.integers(-127, 128, shape) for shape in (d, (positions, d), (positions, d)))
    scales = [[(int(rng.integers(1 << 15, 1 << 16)), int(rng.integers(-26, -18))) for _ in range(positions)]
              for _ in range(2)]
    table = RowScaledInt8.from_float(rng.normal(0, 1, (vocab, d)))
    registers = {**constants(), "qs": (40000, -22), "coef": nx.scale_from_float(np.log2(np.e) / np.sqrt(d))}
    registers["coef"] = tuple(int(v) for v in registers["coef"])
    memory = {0: q, 16: keys, 64: values, 112: [s[0] for s in scales[0]], 120: [s[1] for s in scales[0]],
              128: [s[0] for s in scales[1]], 136: [s[1] for s in scales[1]], 200: table.codes,
              256: table.rows}
    program = (vp.attend(0, d, "qs", 16, 112, 120, 64, 128, 136, positions, "coef", 144, 152, 160)
               + vp.lm_head(200, 256, vocab, d, 0, 264, "token"))
    return memory, registers, program, False


# each step's programs on random inputs (name: its builder, given a seed); the core's test runs them too
PROGRAM_CASES = {
    "rms_quantize": rms_case,
    "heads_rope_residual": heads_rope_residual_case,
    "gated_relu2": functools.partial(gated_case, kind="relu2"),
    "gated_silu": functools.partial(gated_case, kind="silu"),
    "attend_lm_head": attend_lm_head_case,
}


@pytest.mark.parametrize("case, lanes", [("rms_quantize", 1), ("rms_quantize", 2), ("rms_quantize", 4),
                                         ("heads_rope_residual", 1), ("heads_rope_residual", 4),
                                         ("gated_relu2", 2), ("gated_silu", 4),
                                         ("attend_lm_head", 1), ("attend_lm_head", 4)])
def test_programs(case, lanes):
    seed = 10 * lanes + len(case)
    print(f"seed {seed}")
    memory, registers, program, sigmoid = PROGRAM_CASES[case](seed)
    check_program(lanes, memory, registers, program, sigmoid=sigmoid)


def test_flags_what_the_machine_refuses():
    """Operands not congruent modulo the lanes, a b element outside the b port and MAX of an
    empty pass are errors."""
    unit = VectorUnit(lanes=2, depth=64)
    for op in (VectorOp(2, 0, 3, Function.ADD),
               VectorOp(1, 0, 2, Function.MUL, BSource.VECTOR, 4),
               VectorOp(0, 0, function=Function.ADD, reduce=((Reduce.MAX, "m"),))):
        with pytest.raises(ProgramError, match="the unit flags"):
            run_on_unit(unit, {4: [1 << 20]}, {}, [op])


@pytest.mark.parametrize("lanes", [1, 4])
def test_repeated_b(lanes):
    """A b_period pass reads b[i mod b_period], whole rows at a time; a period or an a that does
    not start on a row's first lane is flagged."""
    seed = 70 + lanes
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    memory = {0: rng.integers(-(1 << 20), 1 << 20, 24), 64: rng.integers(-(1 << 15), 1 << 15, 8)}
    check_program(lanes, memory, {}, [
        VectorOp(24, 0, 32, Function.MUL, BSource.VECTOR, 64, b_period=8, reduce=((Reduce.SUM, "s"),)),
        VectorOp(20, 4, 36, Function.MUL, BSource.VECTOR, 68, b_period=4, c=0)])
    if lanes > 1:
        for op in (VectorOp(6, 0, 32, Function.MUL, BSource.VECTOR, 64, b_period=6),
                   VectorOp(6, 1, 33, Function.MUL, BSource.VECTOR, 65, b_period=4)):
            with pytest.raises(ProgramError, match="the unit flags"):
                run_on_unit(VectorUnit(lanes=lanes, depth=DEPTH), memory, {}, [op])


@pytest.mark.parametrize("lanes", [1, 4])
def test_results_memory(lanes):
    """Elements written to the results memory (while a pass runs; one a cycle, then a row part) are
    what a pass's a reads there."""
    seed = 80 + lanes
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    values, gains = rng.integers(-(1 << 19), 1 << 19, 12), rng.integers(-(1 << 15), 1 << 15, 12)
    unit = VectorUnit(lanes=lanes, depth=64, results=16)
    op = VectorOp(12, 4, 36, Function.MUL, BSource.VECTOR, 20, reduce=((Reduce.SUM, "s"),))
    got = {}

    async def testbench(ctx):
        await write_memory(ctx, unit, 20, gains)
        await stream_put(ctx, unit.i, [{**pass_payload(VectorOp(8, 0, function=Function.ADD), {})}])
        for address, value in enumerate(values[:8]):      # as the pass runs, then after
            ctx.set(unit.results, {"addr": 4 + address, "mask": 1 << ((4 + address) % lanes),
                                   "row": [int(value)] * lanes})
            await ctx.tick()
        part = min(lanes, 4)                                # the rest a row part a cycle
        for first in range(8, 12, part):
            ctx.set(unit.results, {"addr": 4 + first, "mask": ((1 << part) - 1) << ((4 + first) % lanes),
                                   "row": [int(values[first + k % part]) for k in range(lanes)]})
            await ctx.tick()
        ctx.set(unit.results.mask, 0)
        await stream_get(ctx, unit.o, 1)
        await stream_put(ctx, unit.i, [{**pass_payload(op, {}), "a_results": 1}])
        [result] = await stream_get(ctx, unit.o, 1)
        got["sum"], got["error"] = result.value, result.error
        got["out"] = list(await read_memory(ctx, unit, 36, 12))

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert not got["error"]
    assert got["out"] == [int(v) * int(g) for v, g in zip(values, gains)]
    assert got["sum"] == sum(got["out"])


@pytest.mark.parametrize("lanes", [1, 4])
def test_a_following_pass_reads_each_row_once_it_has_landed(lanes):
    """A pass that follows a call starts before the call's results land (one now and then, the
    count in ``landed`` the cycle after each); each row waits for its elements, so the pass reads
    what landed, and offers its result only after the last has."""
    seed = 90 + lanes
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    values, gains = rng.integers(-(1 << 19), 1 << 19, 11), rng.integers(-(1 << 15), 1 << 15, 11)
    unit = VectorUnit(lanes=lanes, depth=64, results=16)
    op = VectorOp(11, 4, 36, Function.MUL, BSource.VECTOR, 20, reduce=((Reduce.SUM, "s"),), follows=True)
    got = {}

    async def land(ctx):
        await ctx.tick().until(unit.busy)       # the pass taken
        for address, value in enumerate(values):
            for _ in range(int(rng.integers(0, 4))):
                await ctx.tick()
            ctx.set(unit.results, {"addr": 4 + address, "mask": 1 << ((4 + address) % lanes),
                                   "row": [int(value)] * lanes})
            await ctx.tick()
            ctx.set(unit.results.mask, 0)
            ctx.set(unit.landed, address + 1)
        got["landed"] = True

    async def testbench(ctx):
        await write_memory(ctx, unit, 20, gains)
        await stream_put(ctx, unit.i, [{**pass_payload(op, {}), "a_results": 1}])
        [result] = await stream_get(ctx, unit.o, 1)
        got["after"] = got.get("landed", False)
        got["sum"], got["error"] = result.value, result.error
        got["out"] = list(await read_memory(ctx, unit, 36, 11))

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_testbench(land)
    sim.run()
    assert got["after"] and not got["error"]
    assert got["out"] == [int(v) * int(g) for v, g in zip(values, gains)]
    assert got["sum"] == sum(got["out"])


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="lanes must be a power of two, not 3; 2 or 4 would"):
        VectorUnit(lanes=3, depth=48)
    with pytest.raises(ValueError, match="depth must be a multiple of lanes 4, not 10; 12 would"):
        VectorUnit(lanes=4, depth=10)


@pytest.mark.parametrize("lanes", [1, 2, 4])
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_reductions_with_ties(lanes, offset):
    """ARGMAX keeps the first of equal maxima whichever lane holds it; MAXABS, MAX and SUM over a
    pass that starts and ends inside a row."""
    rng = np.random.default_rng(40 + lanes + offset)
    print(f"seed {40 + lanes + offset}")
    values = rng.choice([-9, 9, 3, -2, 0], 13)
    program = [VectorOp(len(values), 16 + offset, function=Function.ADD, reduce=((kind, kind.name),))
               for kind in Reduce]
    check_program(lanes, {16 + offset: values}, {}, program)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_reductions_at_an_elements_limits(lanes):
    """MAXABS of the most negative element (its key 2^36 − 1), of −1 against 1 and 0, and MAX, SUM
    and ARGMAX beside them."""
    low, high = -(1 << (ELEMENT_BITS - 1)), (1 << (ELEMENT_BITS - 1)) - 1
    groups = [[low, high, -1, 0], [high, low + 1, 1, -1], [-1, 1, 0], [0, 0], [-1], [low]]
    program = [VectorOp(len(values), 8 * k, function=Function.ADD, reduce=((kind, f"{kind.name}{k}"),))
               for k, values in enumerate(groups) for kind in Reduce]
    check_program(lanes, {8 * k: values for k, values in enumerate(groups)}, {}, program)


@pytest.mark.parametrize("lanes", [1, 4])
def test_cycles(lanes):
    """``cycles`` is the edges from a pass taken to its result offered, with and without a
    reduction, aligned and not, and empty."""
    unit = VectorUnit(lanes=lanes, depth=64)
    passes = [VectorOp(n, a, 32 + a, Function.ADD, reduce=((Reduce.SUM, "s"),) if reduce else ())
              for n, a, reduce in ((1, 0, True), (9, 3, False), (16, 0, True), (0, 0, False))]
    measured = []

    async def testbench(ctx):
        for op in passes:
            ctx.set(unit.i.payload, pass_payload(op, {}))
            ctx.set(unit.i.valid, 1)
            await ctx.tick().until(unit.i.ready)
            ctx.set(unit.i.valid, 0)
            edges = 1
            while not ctx.get(unit.o.valid):
                await ctx.tick()
                edges += 1
            measured.append(edges)
            ctx.set(unit.o.ready, 1)
            await ctx.tick()
            ctx.set(unit.o.ready, 0)

    sim = Simulator(unit)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert measured == [unit.op_cycles(lanes, op) for op in passes]
