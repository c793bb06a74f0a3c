# amaranth: UnusedElaboratable=no
"""ScalarUnit in the Amaranth simulator, operation for operation against VectorMachine: its
registers, its scratchpad and its errors (where the machine raises ProgramError)."""

import random

import pytest
from amaranth import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from hw import vector_programs as vp
from hw.scalar_unit import ScalarUnit, register_value, scalar_payload
from hw.testing import stream_get, stream_put
from hw.vector_isa import ELEMENT_BITS, Amount, Part, ProgramError, ScalarKind as S, ScalarOp, VectorMachine
from model import numerics as nx

REGISTERS, DEPTH = 24, 32
SCALE_KINDS = (S.MUL, S.ADD, S.RECIP, S.RSQRT, S.MANT, S.EXP)


def with_scratchpad(unit: ScalarUnit, memory: list) -> tuple[Module, Memory]:
    """The unit with a scratchpad holding ``memory`` on its access port (a registered read, as the
    vector unit's)."""
    m = Module()
    m.submodules.unit = unit
    m.submodules.memory = scratchpad = Memory(shape=unit.access.data.shape(), depth=unit.depth, init=memory)
    read, write = scratchpad.read_port(), scratchpad.write_port()
    m.d.comb += [read.addr.eq(unit.access.addr), unit.access_data.eq(read.data),
                 write.addr.eq(unit.access.addr), write.data.eq(unit.access.data),
                 write.en.eq(unit.access.write)]
    return m, scratchpad


def run(program, registers: dict, memory: list | None = None) -> dict:
    """The program on a ScalarUnit and on VectorMachine from the same registers and scratchpad;
    checks each operation's error (the machine's ProgramError) and the final registers and
    scratchpad against the machine's, and returns the cycles each kind took (kind: set)."""
    names = sorted({name for op in program for name in (op.result, *op.registers) if name} | set(registers))
    assert len(names) <= REGISTERS
    number = {name: k for k, name in enumerate(names)}
    memory = list(memory or [0] * DEPTH)
    machine = VectorMachine(DEPTH)
    machine.registers = dict(registers)
    machine.memory = list(memory)
    expected = []
    for op in program:
        try:
            machine.run([op])
            expected.append(0)
        except ProgramError:
            expected.append(1)
    unit = ScalarUnit(registers=REGISTERS, depth=DEPTH)
    top, scratchpad = with_scratchpad(unit, memory)
    errors, cycles, final, final_memory = [], {}, {}, []

    async def testbench(ctx):
        for name, value in registers.items():
            ctx.set(unit.write, {"addr": number[name], "data": register_value(value), "en": 1})
            await ctx.tick()
        ctx.set(unit.write.en, 0)
        for op in program:
            await stream_put(ctx, unit.i, [scalar_payload(op, number)])
            count = 1
            while not ctx.get(unit.o.valid):
                await ctx.tick()
                count += 1
            [answer] = await stream_get(ctx, unit.o, 1)
            errors.append(answer.error)
            cycles.setdefault(op.kind, set()).add(count)
        ctx.set(unit.read_select, 1)
        for name in names:
            ctx.set(unit.read[0], number[name])
            await ctx.tick()
            final[name] = (ctx.get(unit.read_data[0].value), ctx.get(unit.read_data[0].exp))
        final_memory.extend(ctx.get(scratchpad.data[k]) for k in range(DEPTH))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert errors == expected, [(op, want, have) for op, want, have in zip(program, expected, errors)
                                if want != have]
    for name, value in machine.registers.items():
        have = final[name]
        assert (have if isinstance(value, tuple) else have[0]) == value, (name, have, value)
    assert final_memory == machine.memory
    return cycles


def test_cycles_as_documented():
    scale, small = (40000, -20), 5
    program = [ScalarOp(S.MUL, "m", "s", "s"), ScalarOp(S.ADD, "m", "m", "s"), ScalarOp(S.FROM_INT, "f", "n"),
               ScalarOp(S.RECIP, "r", "s"), ScalarOp(S.RSQRT, "q", "s"),
               ScalarOp(S.INT, "i", exp=Amount(offset=3)),
               ScalarOp(S.MUL_INT, "p", "n", "n"), ScalarOp(S.CODE_SHIFT, "e", "peak"),
               ScalarOp(S.CODE_RECIP, "c", "peak", "e"), ScalarOp(S.STORE, a="n", address=3),
               ScalarOp(S.LOAD, "l", address=3)]
    cycles = run(program, {"s": scale, "n": small, "peak": 123456})
    for kind, counts in cycles.items():
        assert counts == {ScalarUnit.cycles_of(kind)}, kind


SCALES, INTEGERS, SHIFTS = (("s0", "s1", "s2", "s3", "s4"), ("i0", "i1", "i2", "i3", "i4", "i5"),
                            ("e0", "e1", "e2"))


def signed_value(rng: random.Random, bits: int) -> int:
    """A signed value of up to ``bits`` bits, of a random length (small values, edges and all)."""
    length = rng.randint(0, bits - 1)
    return rng.choice([rng.randint(-(1 << length), (1 << length) - 1), -(1 << (bits - 1)),
                       (1 << (bits - 1)) - 1, 0, rng.randint(0, (1 << length) - 1)])


def random_scale(rng: random.Random) -> tuple:
    if rng.random() < 0.1:
        return 0, 0
    return rng.randint(1 << 15, (1 << 16) - 1), rng.randint(-60, 30)


def random_amount(rng: random.Random) -> Amount:
    offset = rng.choice([0, rng.randint(-40, 40), signed_value(rng, 40)])
    if rng.random() < 0.3:
        return Amount(offset=offset)
    sign = rng.choice([-2, -1, 1, 2])
    if rng.random() < 0.2:          # a scale's exponent
        return Amount(rng.choice(SCALES), sign, offset, Part.EXPONENT)
    return Amount(rng.choice(SHIFTS), sign, offset, rng.choice([Part.ALL, Part.POSITIVE, Part.NEGATIVE]))


def random_op(rng: random.Random) -> ScalarOp:
    """A well-typed operation (scales in s*, integers in i*, shift amounts in e*) that may still
    overflow a width: those are the error cases."""
    kind = rng.choice(list(S))
    def scale():
        return rng.choice(SCALES)

    def integer():
        return rng.choice(INTEGERS)

    def shift():
        return rng.choice(SHIFTS)
    if kind in (S.MUL, S.ADD):
        return ScalarOp(kind, scale(), scale(), scale())
    if kind in (S.RECIP, S.RSQRT):
        return ScalarOp(kind, scale(), scale())
    if kind in (S.FROM_INT, S.SCALE):
        return ScalarOp(kind, scale(), integer(), exp=random_amount(rng))
    if kind in (S.MANT, S.EXP):
        return ScalarOp(kind, integer(), scale())
    if kind in (S.NORM_SHIFT, S.CODE_SHIFT):
        return ScalarOp(kind, shift(), integer())
    if kind is S.CODE_RECIP:
        return ScalarOp(kind, integer(), integer(), shift())
    if kind is S.STORE:
        return ScalarOp(kind, a=integer(), address=rng.randrange(DEPTH))
    if kind is S.LOAD:
        return ScalarOp(kind, integer(), address=rng.randrange(DEPTH))
    if kind is S.INT:
        return ScalarOp(kind, rng.choice(INTEGERS + SHIFTS), exp=random_amount(rng))
    if kind is S.ADD_INT:
        return ScalarOp(kind, rng.choice(INTEGERS + SHIFTS), integer(), exp=random_amount(rng))
    if kind is S.SELECT:
        pick = rng.choice([SCALES, INTEGERS])
        return ScalarOp(kind, rng.choice(pick), rng.choice(pick), rng.choice(pick),
                        exp=Amount(rng.choice(INTEGERS + SHIFTS)))
    if kind is S.SHR:
        return ScalarOp(kind, integer(), integer(), shift())
    return ScalarOp(kind, integer(), integer(), integer())          # MAX, IS_ZERO, MUL_INT


@pytest.mark.parametrize("seed", range(6))
def test_random_operations(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    registers = {name: random_scale(rng) for name in SCALES}
    registers |= {name: signed_value(rng, rng.choice([18, 36, 48])) for name in INTEGERS}
    registers |= {name: rng.randint(-20, 40) for name in SHIFTS}
    memory = [signed_value(rng, ELEMENT_BITS) for _ in range(DEPTH)]
    program = []
    for _ in range(120):
        op = random_op(rng)
        if op.kind is S.CODE_RECIP and rng.random() < 0.7:        # mostly the shift codes() gives it
            program.append(ScalarOp(S.CODE_SHIFT, op.b, op.a))
        program.append(op)
    run(program, registers, memory)


@pytest.mark.parametrize("n", [0, 1, 2, 3, (1 << 16) - 1, 1 << 16, (1 << 17) - 1, (1 << 17) + 1, 0x2FFFF,
                               (1 << 46) + (1 << 30) - 1, (1 << 47) - 1, -1])
@pytest.mark.parametrize("exp", [0, -40, 200, -(1 << 20)])
def test_from_int_edges(n, exp):
    """FROM_INT of the edges: zero, the rounding's carry to 2^16, left and right shifts, the widest
    integer, a negative one (an error) and exponents that overflow the scale's."""
    run([ScalarOp(S.FROM_INT, "f", "n", exp=Amount(offset=exp)),
         ScalarOp(S.FROM_INT, "g", "n", exp=Amount("e"))], {"n": n, "e": exp})


@pytest.mark.parametrize("peak", [0, 1, 5, 127, (1 << 16) - 1, 1 << 16, (1 << 17) - 1, 1 << 17, 3_000_000,
                                  (1 << 47) - 1])
def test_codes_registers(peak):
    """The scalar half of ``codes``: the shift and the reciprocal."""
    program = [op for op in vp.codes(0, 4, 8, "peak", "t", "test") if isinstance(op, ScalarOp)]
    run(vp.constants() + program, {"peak": peak})


def test_rms_scale_arithmetic():
    """rms_quantize's scale arithmetic after its passes, from sums and peaks a norm may give."""
    program = [op for op in vp.rms_quantize(0, 16, "x_scale", 0, -3, "inv_len", "eps", 0, 0, "out")
               if isinstance(op, ScalarOp) and op.kind not in (S.CODE_SHIFT, S.CODE_RECIP)]
    rng = random.Random(7)
    for _ in range(4):
        registers = {"out_peak_x": rng.randint(1, 1 << 30), "out_squares": rng.randint(1, 1 << 40),
                     "out_peak": rng.randint(1, 1 << 33), "x_scale": random_scale(rng) or (1 << 15, -16),
                     "inv_len": nx.scale_from_float(1 / 192), "eps": nx.scale_from_float(1e-5)}
        registers["x_scale"] = (rng.randint(1 << 15, (1 << 16) - 1), -16)
        run(vp.constants() + program, registers)
