"""The vector unit's programs (hw.vector_programs) on its instruction set's machine, bit for bit
against model.integer: each step alone on random and edge inputs, then whole tokens."""

import numpy as np
import pytest

from hw import vector_programs as vp
from hw.vector_isa import (Amount, BSource, Call, Function, ProgramError, Reduce, ScalarKind, ScalarOp,
                           VectorMachine, VectorOp)
from model import integer, numerics as nx
from model.integer import Gain, IntegerModel, RowScaledInt8, tiny_model


def machine(size=4096):
    m = VectorMachine(size)
    m.run(vp.constants())
    return m


def set_scale(m, name, scale):
    m.registers[name] = (int(scale[0]), int(scale[1]))


def random_scale(rng, exps=(-40, 0)):
    return int(rng.integers(1 << 15, 1 << 16)), int(rng.integers(*exps))


def vector(rng, n, bits, kind):
    """Random signed values of up to ``bits`` bits, or an edge: zeros, all ±max, one spike."""
    top = (1 << (bits - 1)) - 1
    if kind == "zeros":
        return np.zeros(n, dtype=np.int64)
    if kind == "extremes":
        return rng.choice([-top, top, 0, 1, -1], n)
    if kind == "spike":
        x = np.zeros(n, dtype=np.int64)
        x[rng.integers(n)] = top
        return x
    return rng.integers(-top, top + 1, n) >> rng.integers(0, bits, n)


KINDS = ("random", "zeros", "extremes", "spike")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", KINDS)
def test_rms_quantize(seed, kind):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    x = vector(rng, n, int(rng.integers(2, 33)), kind)
    gain = Gain.from_float(rng.normal(1.0, 0.5, n))
    x_scale, eps = random_scale(rng), nx.scale_from_float(1e-5)
    m = machine()
    m.write(0, x)
    m.write(1000, gain.values)
    for name, scale in (("xs", x_scale), ("inv_len", gain.inv_len), ("eps", eps)):
        set_scale(m, name, scale)
    m.run(vp.rms_quantize(0, n, "xs", 1000, gain.exp, "inv_len", "eps", 2000, 3000, "out"))
    codes, scale = integer.rms_quantize(x, x_scale, gain, eps)
    assert np.array_equal(m.read(3000, n), codes)
    assert m.registers["out"] == (int(scale[0]), int(scale[1]))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", KINDS)
def test_quantize_heads(seed, kind):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    heads, d = int(rng.integers(1, 5)), 2 * int(rng.integers(1, 17))
    acc = vector(rng, heads * d, int(rng.integers(2, 21)), kind)
    acc_scale = random_scale(rng)
    m = machine()
    m.write(0, acc)
    set_scale(m, "acc_scale", acc_scale)
    m.run(vp.quantize_heads(0, heads, d, "acc_scale", 500, "hs"))
    codes, scales = integer.quantize_heads(acc.reshape(heads, d), acc_scale)
    assert np.array_equal(m.read(500, heads * d), codes.ravel())
    assert [m.registers[f"hs{h}"] for h in range(heads)] == list(zip(scales[0].tolist(), scales[1].tolist()))


@pytest.mark.parametrize("seed", range(4))
def test_rope(seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    heads, d, position = int(rng.integers(1, 4)), 2 * int(rng.integers(1, 17)), int(rng.integers(0, 256))
    x = vector(rng, heads * d, 20, "random")
    cos, sin = nx.rope_int_tables(d, 10000.0, 256)
    m = machine()
    m.write(0, x)
    m.write(200, cos[position])
    m.write(300, sin[position])
    m.run(vp.rope(0, heads, d, 200, 300, 400, 600))
    assert np.array_equal(m.read(600, heads * d),
                          nx.rope_rotate(x.reshape(heads, d), cos[position], sin[position]).ravel())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", KINDS)
def test_dequantize_add(seed, kind):
    """The residual add, saturating; scales from tiny to large enough to saturate."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 100))
    acc, h = vector(rng, n, 20, kind), vector(rng, n, 32, "random" if kind == "zeros" else kind)
    scale = int(rng.integers(1 << 15, 1 << 16)), int(rng.integers(-40, 10))
    m = machine()
    m.write(0, acc)
    m.write(100, h)
    set_scale(m, "s", scale)
    m.run(vp.dequantize_add(0, n, "s", 100, 200))
    want = nx.saturate(h + nx.apply_scale(acc, scale, nx.RES_FRAC), nx.RES_BITS)
    assert np.array_equal(m.read(100, n), want)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["relu2", "silu"])
@pytest.mark.parametrize("edge", KINDS)
def test_gated(seed, kind, edge):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 100))
    gate, up = vector(rng, n, 18, edge), vector(rng, n, 18, "random")
    gate_scale = int(rng.integers(1 << 15, 1 << 16)), int(rng.integers(-30, -16))
    up_scale = random_scale(rng)
    m = machine()
    m.write(0, gate)
    m.write(100, up)
    set_scale(m, "gs", gate_scale)
    set_scale(m, "us", up_scale)
    m.run(vp.gated(0, 100, n, "gs", "us", kind, 200, 300, "out"))
    values, scale = integer.gated_activation(gate, gate_scale, up, up_scale, kind)
    assert np.array_equal(m.read(300, n), values)
    assert m.registers["out"] == (int(scale[0]), int(scale[1]))


@pytest.mark.parametrize("seed", range(6))
def test_attend(seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    d, positions = 2 * int(rng.integers(1, 17)), int(rng.integers(1, 40))
    q = rng.integers(-127, 128, d)
    keys, values = rng.integers(-127, 128, (positions, d)), rng.integers(-127, 128, (positions, d))
    # int8 codes of values near 1 have scales near 1/127, so scores stay in the Q.8 element
    key_scales = [random_scale(rng, (-26, -18)) for _ in range(positions)]
    value_scales = [random_scale(rng) for _ in range(positions)]
    q_scale, coef = random_scale(rng, (-26, -18)), nx.scale_from_float(np.log2(np.e) / np.sqrt(d))
    m = machine()
    for address, data in ((0, q), (100, keys), (2000, values), (3500, [s[0] for s in key_scales]),
                          (3550, [s[1] for s in key_scales]), (3600, [s[0] for s in value_scales]),
                          (3650, [s[1] for s in value_scales])):
        m.write(address, data)
    set_scale(m, "qs", q_scale)
    set_scale(m, "coef", coef)
    m.run(vp.attend(0, d, "qs", 100, 3500, 3550, 2000, 3600, 3650, positions, "coef", 3700, 3750, 3800))
    split = [(np.array([s[0] for s in scales]), np.array([s[1] for s in scales]))
             for scales in (key_scales, value_scales)]
    assert np.array_equal(m.read(3800, d), integer.attend(q, q_scale, keys, split[0], values, split[1], coef))

    def attention_unit(call, regions, registers):         # what the attention unit answers
        sums, row_scale = integer.attend_sums(regions[0], registers["qs"], keys, split[0], values, split[1],
                                              coef)
        return [(call.args[2], sums), (call.writes[0], (int(row_scale[0]), int(row_scale[1])))]
    m.run(vp.attend_call(0, d, ["qs"], 0, 0, 3850, 3900), attention_unit)
    assert np.array_equal(m.read(3900, d), m.read(3800, d))


def test_a_call_sets_only_its_registers():
    m = machine()
    with pytest.raises(ProgramError, match="a trace call sets 'x', not one of its writes"):
        m.run([Call("trace", writes=("y",))], lambda call, regions, registers: [("x", 1)])


def test_a_detached_calls_results_are_left_alone_until_the_next_call():
    """Elements a detached call writes may not be read or written before the program's next
    call; the program may not end before one, and a detached call sets no registers."""
    def serve(call, regions, registers):
        return [(100, [7] * 8)] if call.kind == "product" else []

    detached = Call("product", detach=True)
    for touching in (VectorOp(4, 104, 0, Function.ADD), VectorOp(4, 0, 102, Function.ADD),
                     VectorOp(2, 0, 0, Function.MUL, BSource.VECTOR, 96, b_period=8),
                     ScalarOp(ScalarKind.LOAD, "x", address=107)):
        with pytest.raises(ProgramError, match="touches elements 100–107, which a detached product call"):
            machine().run([detached, touching], serve)
    with pytest.raises(ProgramError, match="the program ends while a detached product call's results land"):
        machine().run([detached, VectorOp(4, 0, 8, Function.ADD)], serve)
    with pytest.raises(ProgramError, match="a detached call sets none"):
        machine().run([Call("product", writes=("x",), detach=True)], lambda *_: [("x", 1)])
    m = machine()
    m.run([detached, VectorOp(4, 0, 8, Function.ADD), Call("wait"), VectorOp(8, 100, 0, Function.ADD)], serve)
    assert list(m.read(0, 8)) == [7] * 8


def test_a_pass_that_follows_a_detached_call_reads_all_of_its_results_and_ends_it():
    """A following pass's a is exactly the landing results (nothing else of it may touch them);
    after it, the call is over: its results and inputs are free and the program may end. With no
    call landing (a call since has waited for it), it is an ordinary pass."""
    def serve(call, regions, registers):
        return [(100, [3] * 8)] if call.kind == "product" else []

    detached = Call("product", memory=((40, 8),), detach=True)
    for wrong, message in ((VectorOp(4, 100, 0, Function.ADD, follows=True),
                            "as they land \\(elements 100–107"),
                           (VectorOp(8, 100, 104, Function.ADD, follows=True), "touches elements 100–107"),
                           (VectorOp(8, 100, 40, Function.ADD, follows=True), "writes elements 40–47")):
        with pytest.raises(ProgramError, match=message):
            machine().run([detached, wrong], serve)
    m = machine()
    m.run([detached, Call("wait"), VectorOp(4, 102, 0, Function.ADD, follows=True)], serve)
    m = machine()
    m.run([detached, VectorOp(8, 100, 0, Function.ADD, follows=True), VectorOp(8, 100, 40, Function.ADD)],
          serve)
    assert list(m.read(0, 8)) == [3] * 8 and list(m.read(40, 8)) == [3] * 8


def test_a_detached_calls_inputs_are_not_written_until_the_next_call():
    """The regions a detached call reads may be read, but not written, before the next call (its
    caller may still be reading them)."""
    def serve(call, regions, registers):
        return [(100, [int(v) for v in regions[0]])] if call.kind == "product" else []

    detached = Call("product", memory=((40, 8),), detach=True)
    for writing in (VectorOp(4, 0, 44, Function.ADD), ScalarOp(ScalarKind.STORE, a="x", address=47)):
        with pytest.raises(ProgramError, match="writes elements 40–47, which a detached product call reads"):
            machine().run([ScalarOp(ScalarKind.INT, "x"), detached, writing], serve)
    m = machine()
    m.write(40, list(range(8)))
    m.run([detached, VectorOp(8, 40, 0, Function.ADD), Call("wait"), VectorOp(8, 0, 40, Function.ADD)], serve)
    assert list(m.read(100, 8)) == list(range(8))


@pytest.mark.parametrize("seed", range(3))
def test_lm_head_and_greedy_sample(seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    vocab, n = int(rng.integers(2, 40)), int(rng.integers(1, 50))
    table = RowScaledInt8.from_float(rng.normal(0, 1, (vocab, n)))
    x = rng.integers(-127, 128, n)
    m = machine()
    m.write(0, table.codes)
    m.write(2000, table.rows)
    m.write(2100, x)
    m.run(vp.lm_head(0, 2000, vocab, n, 2100, 2200, "token"))
    logits = integer.lm_head_logits(table, x)
    assert np.array_equal(m.read(2200, vocab), logits)
    assert m.registers["token"] == integer.sample(logits, (1, 0), None, None, 1)[0]


def test_widths_are_checked():
    """A pass whose operands do not fit the datapath fails with the pass named, as do a register
    read before it is set and an address outside the scratchpad."""
    m = machine(16)
    m.write(0, [1 << 20, 3])
    m.registers["wide"] = 1 << 18
    with pytest.raises(ProgramError, match="b 262144 outside the b port.s 18 bits in too wide"):
        m.run([VectorOp(2, 0, 2, Function.MUL, BSource.REGISTER, "wide", note="too wide")])
    with pytest.raises(ProgramError, match="register 'missing' read before it was set"):
        m.run([VectorOp(2, 0, 2, shift=Amount("missing"), function=Function.ADD)])
    with pytest.raises(ProgramError, match="outside the scratchpad"):
        m.run([VectorOp(2, 15, function=Function.ADD)])
    with pytest.raises(ProgramError, match="b 1048576 outside the b port.s 18 bits in square"):
        m.run([VectorOp(1, 0, 2, Function.MUL, BSource.SELF, note="square")])
    m.registers["wide"] = (1 << 17) - 1
    with pytest.raises(ProgramError, match="y 137437904896 does not fit an element.s 36 bits"):
        m.run([VectorOp(1, 0, 2, Function.MUL, BSource.REGISTER, "wide")])
    m.run([VectorOp(2, 0, 2, Function.ADD, reduce=((Reduce.MAXABS, "peak"),)),
           ScalarOp(ScalarKind.NORM_SHIFT, "e", "peak")])
    assert m.registers["peak"] == 1 << 20 and m.registers["e"] == 21 - nx.NORM_MAX_BITLEN
    with pytest.raises(ValueError, match="b_period repeats a VECTOR b of 1 element or more, not 2 with REG"):
        VectorOp(2, 0, 2, Function.MUL, BSource.REGISTER, "wide", b_period=2)


def compare_steps(model, tokens, units=False):
    """ProgramModel.step against IntegerModel.step: logits, scale and every trace entry (``units``:
    attention on the attention unit and the LM head on the token table, served by calls)."""
    programs, cache = vp.ProgramModel(model, units), model.new_cache()
    for position, token in enumerate(tokens):
        want, got = {}, {}
        logits, scale = model.step(token, cache, lambda layer, step, **v: want.setdefault((layer, step), v))
        program_logits, program_scale = programs.step(
            token, position, lambda layer, step, **v: got.setdefault((layer, step), v))
        assert np.array_equal(program_logits, logits)
        assert program_scale == (int(scale[0]), int(scale[1]))
        assert want.keys() == got.keys()
        for key, values in want.items():
            for name, value in values.items():
                if isinstance(value, tuple):
                    assert [np.asarray(v).tolist() for v in got[key][name]] == \
                        [np.asarray(v).tolist() for v in value]
                else:
                    assert np.array_equal(got[key][name], value), (position, key, name)
    return programs.machine


@pytest.mark.parametrize("seed, overrides", [
    (1, {}),
    (2, {"hidden_act": "silu"}),
    (3, {"hidden_size": 24, "intermediate_size": 40, "num_attention_heads": 3, "num_key_value_heads": 3,
         "num_hidden_layers": 2, "tie_word_embeddings": False}),
])
@pytest.mark.parametrize("units", [False, True])
def test_whole_tokens_of_random_models(tmp_path, seed, overrides, units):
    print(f"seed {seed}")
    model = tiny_model(tmp_path, seed, **overrides)
    tokens = np.random.default_rng(seed).integers(0, model.config.vocab_size, 8)
    compare_steps(model, [int(t) for t in tokens], units)


@pytest.mark.parametrize("name", ["small", "ulx3s"])
@pytest.mark.parametrize("units", [False, True])
def test_whole_tokens_of_shipped_models(name, units):
    model = IntegerModel.from_checkpoint(f"models/{name}")
    m = compare_steps(model, [18, 43, 1], units)
    assert m.passes > 0 and m.scalar_ops > 0 and m.calls > 0
    if units:       # the engine's program: one for every token and position
        programs = vp.ProgramModel(model, units)
        assert programs.token_program(18, 0) == programs.token_program(43, 5)


def test_layout_aligns_regions():
    layout = vp.Layout(align=8)
    assert [layout.add(name, n) for name, n in (("a", 3), ("b", 8), ("c", 1))] == [0, 8, 16]
    assert layout["b"] == 8 and layout.size == 17
    with pytest.raises(ValueError, match="region 'a' is already allocated"):
        layout.add("a", 2)
