# amaranth: UnusedElaboratable=no
"""ScaleUnit in the Amaranth simulator, bit for bit against model.numerics §3."""

import random

import numpy as np
import pytest

from hw import attention, rms_quantizer
from hw.scale_unit import NORMALIZED_QUOTIENT_BITS, QUOTIENT_BITS, ScaleOp, ScaleProgram, ScaleUnit
from hw.testing import run, stream_get, stream_put, transfer_edges
from model import numerics as nx

FUNCTIONS = {
    ScaleOp.MUL: lambda a, b, n: nx.scale_mul(a, b),
    ScaleOp.ADD: lambda a, b, n: nx.scale_add(a, b),
    ScaleOp.FROM_INT: lambda a, b, n: nx.scale_from_int(n, a[1]),
    ScaleOp.RECIP: lambda a, b, n: nx.scale_recip(a),
    ScaleOp.RSQRT: lambda a, b, n: nx.scale_rsqrt(a),
}


def expected(exp_range, op, a, b, n):
    """(mant, exp, invalid) as numerics computes it; invalid where it raises or the exponent
    is outside ``exp_range``."""
    try:
        mant, exp = (int(v) for v in FUNCTIONS[op](a, b, n))
    except ZeroDivisionError:
        return 0, 0, True
    if exp not in exp_range:
        return 0, 0, True
    return mant, exp, False


def command(op, a, b, n=0):
    return {"op": op, "a": {"mant": a[0], "exp": a[1]}, "b": {"mant": b[0], "exp": b[1]}, "n": n}


def run_commands(dut, commands, seed, gap=0.0, stall=0.0):
    """Send the commands with random gaps and stalls; return the results as (mant, exp, invalid)."""
    rng = random.Random(seed)
    got = []

    async def put(ctx):
        await stream_put(ctx, dut.i, [command(*c) for c in commands], rng, gap)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, len(commands), rng, stall))

    run(dut, [put, get], max_cycles=100 * len(commands) + 100, vcd_name=f"scale_unit_{seed}")
    return [(int(p.mant), int(p.exp), bool(p.invalid)) for p in got]


def random_scale(rng, exps):
    """A normalized scale (mantissa in [2^15, 2^16)) over ``exps``, sometimes 0, 2^15 or 2^16 - 1."""
    kind = rng.random()
    if kind < 0.08:
        return 0, 0
    mant = (1 << 15) if kind < 0.16 else (1 << 16) - 1 if kind < 0.24 else \
        rng.randrange(1 << 15, 1 << 16)
    return mant, rng.randrange(exps.start, exps.stop)


def random_int(rng, bits):
    kind = rng.random()
    if kind < 0.1:
        return 0
    if kind < 0.3:    # just below a power of two: rounding carries into a new bit
        return (1 << rng.randrange(1, bits + 1)) - 1
    return rng.getrandbits(rng.randrange(1, bits + 1))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_commands_with_backpressure(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = ScaleUnit(exp_bits=10, int_bits=48)
    exps = range(-300, 250)     # products and sums run off the 10-bit range now and then
    commands = [(rng.choice(list(ScaleOp)), random_scale(rng, exps), random_scale(rng, exps),
                 random_int(rng, 48)) for _ in range(120)]
    got = run_commands(dut, commands, seed, gap=0.3, stall=0.3)
    for c, g in zip(commands, got):
        assert g == expected(dut.exp_range, *c), f"{c[0].name} a={c[1]} b={c[2]} n={c[3]}"


@pytest.mark.parametrize("exp_bits, int_bits, seed", [(6, 1, 11), (12, 48, 12), (24, 20, 13)])
def test_any_mantissa_any_width(exp_bits, int_bits, seed):
    """Unnormalized mantissas and exponents close together (ADD shifts of 0 to 40, carries) at the
    extremes of the parameters, with random gaps and stalls."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = ScaleUnit(exp_bits=exp_bits, int_bits=int_bits)
    near = range(max(dut.exp_range.start, -40), min(dut.exp_range.stop, 40))

    def scale():
        kind = rng.random()
        mant = 0 if kind < 0.05 else rng.randrange(1, 1 << 16) if kind < 0.5 else \
            rng.randrange(1 << 15, 1 << 16)
        exps = dut.exp_range if rng.random() < 0.3 else near
        return mant, rng.randrange(exps.start, exps.stop)
    commands = [(rng.choice(list(ScaleOp)), scale(), scale(), random_int(rng, int_bits))
                for _ in range(200)]
    got = run_commands(dut, commands, seed, gap=0.2, stall=0.2)
    for c, g in zip(commands, got):
        assert g == expected(dut.exp_range, *c), f"{c[0].name} a={c[1]} b={c[2]} n={c[3]}"


def test_edge_cases():
    dut = ScaleUnit(exp_bits=8, int_bits=20)
    top, bottom = dut.exp_range.stop - 1, dut.exp_range.start
    one = (1 << 15, -15)
    commands = [
        (ScaleOp.MUL, (0xFFFF, 0), (0xFFFF, 0), 0),           # product rounds up to 2^32: carry
        (ScaleOp.MUL, (1 << 15, top), (1 << 15, 17), 0),     # exponent overflows
        (ScaleOp.MUL, (1 << 15, bottom), (1 << 15, -1), 0),  # and underflows
        (ScaleOp.MUL, (0, 0), (0xABCD, 3), 0),               # zero times anything
        (ScaleOp.ADD, (0, 0), (0, 0), 0),
        (ScaleOp.ADD, (0, 5), (0x8001, -40), 0),             # a zero operand takes the other's exponent
        (ScaleOp.ADD, (0xFFFF, 0), (0xFFFF, 0), 0),          # carry into a new bit
        (ScaleOp.ADD, (0x8000, 60), (0xFFFF, 0), 0),         # far apart: the small one vanishes
        (ScaleOp.ADD, (0x8000, 40), (0xFFFF, 0), 0),         # 40 apart: a guard bit's worth left
        (ScaleOp.FROM_INT, (0, -7), (0, 0), 0),
        (ScaleOp.FROM_INT, (0, -7), (0, 0), (1 << 20) - 1),  # rounds up to 2^20: carry
        (ScaleOp.FROM_INT, (0, 3), (0, 0), 1),               # shifted left to 16 bits
        (ScaleOp.FROM_INT, (0, 3), (0, 0), 0x17FFF),         # a tie, rounded half up
        (ScaleOp.RECIP, (0, 0), (0, 0), 0),                  # 1/0
        (ScaleOp.RECIP, one, (0, 0), 0),
        (ScaleOp.RECIP, (1 << 15, 9), (0, 0), 0),            # a power of two: quotient 2^16
        (ScaleOp.RECIP, (0xFFFF, -20), (0, 0), 0),
        (ScaleOp.RECIP, (1, 0), (0, 0), 0),                  # an unnormalized mantissa: 2^31
        (ScaleOp.RSQRT, (0, 0), (0, 0), 0),                  # 1/sqrt(0)
        (ScaleOp.RSQRT, one, (0, 0), 0),
        (ScaleOp.RSQRT, (1 << 15, -14), (0, 0), 0),          # odd exponent
        (ScaleOp.RSQRT, (0xFFFF, 101), (0, 0), 0),
        (ScaleOp.RSQRT, (0xFFFF, bottom), (0, 0), 0),
        (ScaleOp.RSQRT, (3, 0), (0, 0), 0),
    ]
    got = run_commands(dut, commands, seed=0)
    for c, g in zip(commands, got):
        assert g == expected(dut.exp_range, *c), f"{c[0].name} a={c[1]} b={c[2]} n={c[3]}"
    assert got[0][2] is False and got[1][2] is True and got[13][2] is True and got[18][2] is True


def test_rms_chain_matches_numerics():
    """The scale arithmetic of one rms_quantize (model.integer) on the unit, step by step."""
    rng = np.random.default_rng(3)
    print("seed 3")
    x = rng.integers(-(1 << 20), 1 << 20, 96)
    e, xn = nx.normalize(x)
    square_sum = int((xn * xn).sum())
    inv_len, x_scale, eps = nx.scale_from_float(1 / 96), nx.RES_UNIT, nx.scale_from_float(1e-5)
    mean_square = nx.scale_mul(nx.scale_mul(nx.scale_from_int(square_sum, 2 * e), inv_len),
                               nx.scale_mul(x_scale, x_scale))
    want = nx.scale_rsqrt(nx.scale_add(mean_square, eps))

    dut = ScaleUnit()
    zero = (0, 0)

    def on_unit(op, a=zero, b=zero, n=0):
        mant, exp, invalid = run_commands(dut, [(op, a, b, n)], seed=0)[0]
        assert not invalid
        return mant, exp
    s = on_unit(ScaleOp.FROM_INT, (0, 2 * e), n=square_sum)
    s = on_unit(ScaleOp.MUL, s, inv_len)
    s = on_unit(ScaleOp.MUL, s, on_unit(ScaleOp.MUL, x_scale, x_scale))
    s = on_unit(ScaleOp.RSQRT, on_unit(ScaleOp.ADD, s, eps))
    assert s == tuple(int(v) for v in want)


@pytest.mark.parametrize("op, a", [(op, (0xC000, -3)) for op in ScaleOp] + [(ScaleOp.RECIP, (0x4000, -3))])
def test_cycles(op, a):
    """Clock edges from accepting a command to its result being valid: ScaleUnit.cycles(op), and
    for the reciprocal of an unnormalized mantissa the quotient's leading bits more."""
    dut = ScaleUnit()
    extra = 0 if a[0] >> 15 else QUOTIENT_BITS - NORMALIZED_QUOTIENT_BITS
    edges = {"i": [], "o": []}

    async def count(ctx):
        edge = 0
        async for _, _, iv, ir, ov in ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o.valid):
            if iv and ir:
                edges["i"].append(edge)
            if ov and not edges["o"]:
                edges["o"].append(edge)
            edge += 1

    async def put(ctx):
        await stream_put(ctx, dut.i, [command(op, a, (0x9000, 4), 12345)])

    async def get(ctx):
        await stream_get(ctx, dut.o, 1)

    run(dut, [put, get], background=[count], max_cycles=200, vcd_name=f"scale_unit_cycles_{op.name}")
    assert edges["o"][0] - edges["i"][0] == dut.cycles(op) + extra


@pytest.mark.parametrize("kwargs, message", [
    ({"exp_bits": 4}, "exp_bits must be an integer from 6 to 24, not 4"),
    ({"int_bits": 0}, "int_bits must be an integer from 1 to 64, not 0"),
    ({"exp_bits": True}, "exp_bits must be an integer"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScaleUnit(**kwargs)


def test_normalized_multiplier_matches_scale_mul():
    """One product per cycle; zero and normalized operands exact, unnormalized ones flagged."""
    from amaranth.sim import Simulator

    from hw.scale_unit import NormalizedScaleMultiplier

    rng = random.Random(9)
    print("seed 9")
    dut = NormalizedScaleMultiplier(exp_bits=10)
    exps = range(-280, 250)
    pairs = [(random_scale(rng, exps), random_scale(rng, exps)) for _ in range(300)]
    pairs += [((0x7FFF, 3), (0x8000, 0)), ((0xFFFF, 0), (0xFFFF, 0)), ((1 << 15, 511), (1 << 15, 20)),
              ((1 << 15, -512), (1 << 15, -20))]
    got = []

    async def bench(ctx):
        for a, b in pairs + [((0, 0), (0, 0))] * dut.latency:
            ctx.set(dut.i, {"a": {"mant": a[0], "exp": a[1]}, "b": {"mant": b[0], "exp": b[1]}, "valid": 1})
            await ctx.tick()
            out = ctx.get(dut.o)
            if out.valid:
                got.append((int(out.mant), int(out.exp), bool(out.invalid)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    got = got[:len(pairs)]
    for (a, b), g in zip(pairs, got):
        if a[0] and b[0] and min(a[0], b[0]) < 1 << 15:
            assert g[2], f"{a} x {b} should be flagged"
        else:
            assert g == expected(range(-512, 512), ScaleOp.MUL, a, b, 0), f"{a} x {b}"


@pytest.mark.parametrize("seed", [3, 4])
def test_shared_unit_serves_each_client_its_own_results(seed):
    """Three clients of different FROM_INT widths send at once, with gaps and stalls: each gets
    exactly the results of its own commands, in order, as numerics computes them."""
    from hw.scale_unit import SharedScaleUnit

    print(f"seed {seed}")
    rng = random.Random(seed)
    widths = {"first": 8, "second": 20, "third": 48}
    dut = SharedScaleUnit(widths, exp_bits=10)
    exps = range(-300, 250)
    commands = {name: [(rng.choice(list(ScaleOp)), random_scale(rng, exps), random_scale(rng, exps),
                        random_int(rng, bits)) for _ in range(25)] for name, bits in widths.items()}
    got = {name: [] for name in widths}

    def client(name):
        port = getattr(dut, name)

        async def put(ctx):
            await stream_put(ctx, port.i, [command(*c) for c in commands[name]], rng, 0.3)

        async def get(ctx):
            got[name].extend(await stream_get(ctx, port.o, len(commands[name]), rng, 0.3))
        return [put, get]

    run(dut, [bench for name in widths for bench in client(name)],
        max_cycles=100 * sum(map(len, commands.values())), vcd_name=f"shared_scale_unit_{seed}")
    exp_range = range(-512, 512)
    for name in widths:
        assert [(int(p.mant), int(p.exp), bool(p.invalid)) for p in got[name]] == \
            [expected(exp_range, *c) for c in commands[name]], name


def test_shared_unit_order_and_latency():
    """Two clients waiting in the same cycle: the first in ``clients`` order is served first, and
    each result comes ScaleUnit.cycles(op) after its command is taken (no latency added)."""
    from hw.scale_unit import SharedScaleUnit

    dut = SharedScaleUnit({"low": 16, "high": 16})
    count, edges = transfer_edges({f"{name} {side}": getattr(getattr(dut, name), side)
                                   for name in ("low", "high") for side in "io"})
    ops = {"low": ScaleOp.RECIP, "high": ScaleOp.MUL}

    def client(name):
        port = getattr(dut, name)

        async def put(ctx):
            await stream_put(ctx, port.i, [command(ops[name], (0xC000, -3), (0x9000, 4), 7)])

        async def get(ctx):
            await stream_get(ctx, port.o, 1)
        return [put, get]

    run(dut, client("high") + client("low"), background=[count], max_cycles=300,
        vcd_name="shared_scale_unit_order")
    (low_in,), (low_out,) = edges["low i"], edges["low o"]
    (high_in,), (high_out,) = edges["high i"], edges["high o"]
    assert low_in < low_out <= high_in < high_out
    assert low_out - low_in == ScaleUnit.cycles_of(ops["low"])
    assert high_out - high_in == ScaleUnit.cycles_of(ops["high"])


@pytest.mark.parametrize("clients, message", [
    ({}, "needs at least one client"),
    ({"_private": 8}, "Python identifiers"),
    ({"rms": 0}, "int_bits of rms must be an integer from 1 to 64, not 0"),
])
def test_shared_unit_parameters_are_checked(clients, message):
    from hw.scale_unit import SharedScaleUnit

    with pytest.raises(ValueError, match=message):
        SharedScaleUnit(clients)


# A program whose results die early: D of rms_quantize as ten commands on one unit (the RmsQuantizer
# ran it so before its products moved to a multiplier of its own).
NORM_PROGRAM = (
    ("square_sum", ScaleOp.FROM_INT, None, None, "sum_sq"),
    ("mean_sum", ScaleOp.MUL, "square_sum", "inv_len", None),
    ("x_scale_sq", ScaleOp.MUL, "x_scale", "x_scale", None),
    ("mean_square", ScaleOp.MUL, "mean_sum", "x_scale_sq", None),
    ("with_eps", ScaleOp.ADD, "mean_square", "eps", None),
    ("inv_rms", ScaleOp.RSQRT, "with_eps", None, None),
    ("peak_int", ScaleOp.FROM_INT, None, None, "peak"),
    ("peak", ScaleOp.MUL, "peak_int", "x_scale", None),
    ("peak_rms", ScaleOp.MUL, "peak", "inv_rms", None),
    ("dequant", ScaleOp.MUL, "peak_rms", "inv_act_max", None),
)


@pytest.mark.parametrize("program", [NORM_PROGRAM, rms_quantizer.ROOT_PROGRAM, attention.ROW_PROGRAM])
def test_program_registers_are_shared_only_between_dead_results(program):
    """Replaying the program on its register assignment: every operand still holds the result it
    names when read, and the caller's result (read by no command) is never written by another."""
    slots = ScaleProgram.registers_of(program)
    held = {}                                     # register -> the result it holds
    for name, _, a, b, _ in program:
        for operand in (a, b):
            if operand in slots:
                assert held[slots[operand]] == operand, f"{operand} was overwritten before {name} read it"
        held[slots[name]] = name
    last = program[-1][0]
    assert [n for n, k in slots.items() if k == slots[last]] == [last]
    assert max(slots.values()) + 1 < len(program) or len(program) <= 2


def test_norm_program_needs_three_registers():
    assert max(ScaleProgram.registers_of(NORM_PROGRAM).values()) + 1 == 3
