"""Programs for the shared vector unit (:mod:`hw.vector_isa`): each step of the contract.

Each function returns the instructions for one step of ``model.integer`` on vectors at given
scratchpad addresses; registers carry scales and the values one pass hands the next. Scale
registers hold ``(mant, exp)``; constants (a gain's exponent, ``eps``, ``1/n``) are either
instruction fields or registers the caller sets once (:func:`constants`).

========================  =========================================  ==============================
program                   model.integer / model.numerics             passes (of n elements)
========================  =========================================  ==============================
:func:`rms_quantize`      ``rms_quantize``                           4 (3 given max |x|)
:func:`quantize_heads`    ``quantize_heads``                         2 a head (1 given its peaks)
:func:`rope`              ``numerics.rope_rotate``                   1, and 2 a head (of d/2)
:func:`dequantize_add`    ``h + apply_scale(acc, s, RES_FRAC)``      2
:func:`embed`             ``IntegerModel.embed_token``               1 (with :func:`embed_call`: and a call)
:func:`rope_call`         a position's cos and sin rows               a call
:func:`cache_entry`       a head's codes and scale into the KV cache  1
:func:`gated`             ``gated_activation``                       4 (relu²) or 5 (SiLU)
:func:`attend`            ``attend``                                 3 a position, 2 of T, 1
:func:`attend_call`       ``attend`` on the attention unit            1 a head (and a call)
:func:`lm_head`           ``lm_head_logits`` and greedy ``sample``   1 a vocabulary entry, 1
:func:`lm_head_call`      the same on the token table                1 (and a call)
========================  =========================================  ==============================

Programs are straight-line: ``attend`` and ``lm_head`` are unrolled over the positions and the
vocabulary here (a sequencer would loop instead). Region addresses of one pass must be congruent
modulo the unit's lanes (:class:`~hw.vector_unit.VectorUnit`); :class:`Layout` lays regions out
on a multiple of ``align``.
"""

import numpy as np

from model import numerics as nx
from model.integer import attend_sums, lm_head_logits, ternary_matmul

from .sequencer import MATRICES, NORMS
from .vector_isa import (Amount, BSource, Call, Function, Part, Pre, Reduce, Round, ScalarKind as S,
                         ScalarOp, VectorMachine, VectorOp)

ZERO, ONE, INV_ACT_MAX, EXP_ONE = "zero", "one", "inv_act_max", "exp_one"


def constants() -> list:
    """Registers every program reads: the integers 0 and 1, the scale 1/127 and the mantissa 2^15."""
    return [ScalarOp(S.INT, ZERO), ScalarOp(S.INT, ONE, exp=Amount(offset=1)),
            ScalarOp(S.INT, "inv_act_max_mant", exp=Amount(offset=nx.INV_ACT_MAX[0])),
            ScalarOp(S.SCALE, INV_ACT_MAX, "inv_act_max_mant", exp=Amount(offset=nx.INV_ACT_MAX[1])),
            ScalarOp(S.INT, EXP_ONE, exp=Amount(offset=1 << (nx.SCALE_BITS - 1)))]


def apply_scale_amount(scale: str, frac: int) -> Amount:
    """The shift of ``apply_scale(x, s, frac)``, ``-(exp + frac)``, from the scale register ``scale``
    (a pass's REGISTER b of it is its mantissa)."""
    return Amount(scale, -1, -frac, Part.EXPONENT)


def code_scalars(peak: str, tag: str) -> list:
    """The shift and reciprocal :func:`codes` needs, from ``peak`` (registers ``{tag}_shift``,
    ``{tag}_recip``)."""
    return [ScalarOp(S.CODE_SHIFT, f"{tag}_shift", peak),
            ScalarOp(S.CODE_RECIP, f"{tag}_recip", peak, f"{tag}_shift")]


def codes(u: int, n: int, dst: int, peak: str, tag: str, step: str, prepared: bool = False) -> list:
    """``absmax_quantize``'s codes of u[n] into dst, given ``peak`` = max |u| in a register
    (``prepared``: :func:`code_scalars` has run).

    Its shift e brings the peak to 17 bits; a left shift (a small peak, e < 0) is exact, so it
    moves into the rounding instead: ``rshift_round(|u << k|·R·127, 33)`` is
    ``rshift_round(|u|·R·127, 33 − k)``, and a' shifts right only: by e's positive part, the
    rounding by 33 plus e's negative part."""
    return [*([] if prepared else code_scalars(peak, tag)),
            VectorOp(n, u, dst, Function.CODE, BSource.REGISTER, f"{tag}_recip",
                     a_shift=Amount(f"{tag}_shift", part=Part.POSITIVE),
                     shift=Amount(f"{tag}_shift", 1, nx.RECIP_SHIFT, Part.NEGATIVE),
                     round=Round.MAGNITUDE, note=f"{step}: int8 codes")]


def rms_quantize(x: int, n: int, x_scale: str, gain: int, gain_exp: int, inv_len: str, eps: str,
                 u: int, dst: int, result: str, peak: str | None = None, between=(), overlap=()) -> list:
    """``rms_quantize``: codes of x[n] (real value x · x_scale) with gains at ``gain`` into dst;
    the dequant scale into register ``result``. ``u`` is n elements of scratch. ``peak`` names a
    register that already holds max |x| (the pass that wrote x reduced it): then no pass finds it.

    The codes need only u's peak, so they come first, then the instructions ``between`` (the
    matmul that reads the codes, say, detached), the pass making Σ x_n², the instructions
    ``overlap`` (a pass reading the matmul's products as they land, say: the scale's arithmetic
    runs beside it) and the scale."""
    t = result
    first = [] if peak else [VectorOp(n, x, function=Function.ADD, reduce=_peak(f"{t}_peak_x"),
                                      note="norm: max |x|")]
    return [
        *first,
        ScalarOp(S.NORM_SHIFT, f"{t}_e", peak or f"{t}_peak_x"),
        VectorOp(n, x, u, Function.MUL, BSource.VECTOR, gain, a_shift=Amount(f"{t}_e"),
                 reduce=((Reduce.MAXABS, f"{t}_peak"),), note="norm: u = x_n · g"),
        ScalarOp(S.MUL, f"{t}_xx", x_scale, x_scale),
        *codes(u, n, dst, f"{t}_peak", t, "norm"),
        *between,
        VectorOp(n, x, function=Function.MUL, b_source=BSource.SELF, a_shift=Amount(f"{t}_e"),
                 reduce=((Reduce.SUM, f"{t}_squares"),), note="norm: Σ x_n²"),
        *overlap,
        ScalarOp(S.FROM_INT, f"{t}_top", f"{t}_peak", exp=Amount(f"{t}_e", 1, -gain_exp)),
        ScalarOp(S.MUL, f"{t}_top", f"{t}_top", x_scale),
        ScalarOp(S.FROM_INT, f"{t}_ms", f"{t}_squares", exp=Amount(f"{t}_e", 2)),
        ScalarOp(S.MUL, f"{t}_ms", f"{t}_ms", inv_len),
        ScalarOp(S.MUL, f"{t}_ms", f"{t}_ms", f"{t}_xx"),
        ScalarOp(S.ADD, f"{t}_ms", f"{t}_ms", eps),
        ScalarOp(S.RSQRT, f"{t}_inv_rms", f"{t}_ms"),
        ScalarOp(S.MUL, f"{t}_top", f"{t}_top", f"{t}_inv_rms"),
        ScalarOp(S.MUL, result, f"{t}_top", INV_ACT_MAX),
    ]


def head_scalars(peaks: str, result: str):
    """What :func:`quantize_heads` needs of head h's peak before its codes (a function of h), for
    :func:`rope`'s ``then_peak``."""
    return lambda h: code_scalars(f"{peaks}{h}", f"{result}{h}")


def quantize_heads(acc: int, heads: int, d: int, acc_scale: str, dst: int, result: str,
                   peaks: str | None = None, prepared: bool = False) -> list:
    """``quantize_heads``: per-head codes of acc[heads·d] into dst; head h's scale into register
    ``f"{result}{h}"``. ``peaks``: head h's max |acc| is already in register ``f"{peaks}{h}"``
    (:func:`rope` left it), so no pass finds it; ``prepared``: and :func:`head_scalars` has run.
    Else the heads' peaks are found first, each pass running beside the scalar work before it."""
    program = []
    if not peaks:
        program += [VectorOp(d, acc + h * d, function=Function.ADD, reduce=_peak(f"{result}{h}_peak"),
                             note="heads: max |acc|") for h in range(heads)]
    for h in range(heads):
        t = f"{result}{h}"
        peak = f"{peaks}{h}" if peaks else f"{t}_peak"
        program += [*codes(acc + h * d, d, dst + h * d, peak, t, "heads", prepared),
                    ScalarOp(S.FROM_INT, t, peak),
                    ScalarOp(S.MUL, t, t, acc_scale),
                    ScalarOp(S.MUL, t, t, INV_ACT_MAX)]
    return program


def rope(x: int, heads: int, d: int, cos: int, sin: int, scratch: int, dst: int,
         peaks: str | None = None, follows: bool = False, between=(), then_peak=None) -> list:
    """``rope_rotate`` of each head of x[heads·d] by one position's cos/sin[d/2] into dst; scratch
    holds heads·d elements. ``peaks``: head h's max |·| into register ``f"{peaks}{h}"``, then the
    instructions ``then_peak(h)`` (a function of h), which run beside the next head's first pass.

    One pass makes x·cos for every element of every head (cos repeated, ``b_period``; it
    ``follows`` the call landing x where asked), the instructions ``between`` come next; then each
    half of each head adds its partner's product with sin, ∓ x_partner·sin, and rounds."""
    half = d // 2
    program = [VectorOp(heads * d, x, scratch, Function.MUL, BSource.VECTOR, cos, b_period=half,
                        follows=follows, note="rope: x·cos"), *between]

    def peak_of(h):
        if not peaks:
            return []
        return [ScalarOp(S.MAX, f"{peaks}{h}", f"{peaks}{h}_0", f"{peaks}{h}_1"),
                *(then_peak(h) if then_peak else [])]

    for h in range(heads):
        first, second = x + h * d, x + h * d + half
        for k, (out, partner, negate) in enumerate(((dst + h * d, second, True),
                                                    (dst + h * d + half, first, False))):
            program.append(VectorOp(half, partner, out, Function.MUL, BSource.VECTOR, sin,
                                    c=scratch + h * d + k * half, negate=negate,
                                    shift=Amount(offset=nx.ROPE_FRAC),
                                    reduce=_peak(f"{peaks}{h}_{k}" if peaks else None),
                                    note="rope: x·cos ∓ y·sin"))
            if k == 0 and h:        # the head before's peak is made while this pass runs
                program += peak_of(h - 1)
    return program + peak_of(heads - 1)


def cache_entry(codes: int, d: int, scale: str, dst: int, mant: int, exp: int) -> list:
    """A head's codes[d] into the KV cache at dst, its scale's mantissa and exponent at mant and exp."""
    return [VectorOp(d, codes, dst, Function.ADD, note="cache: the head's codes"),
            ScalarOp(S.MANT, f"{scale}_mant", scale), ScalarOp(S.STORE, a=f"{scale}_mant", address=mant),
            ScalarOp(S.EXP, f"{scale}_exp", scale), ScalarOp(S.STORE, a=f"{scale}_exp", address=exp)]


def _peak(register: str | None) -> tuple:
    """A pass's reduction of max |y| into ``register`` (none for None)."""
    return ((Reduce.MAXABS, register),) if register else ()


def dequantize_add(acc: int, n: int, scale: str, h: int, scratch: int, peak: str | None = None,
                   follows: bool = False) -> list:
    """``h = saturate(h + apply_scale(acc, scale, RES_FRAC))`` for acc[n] into h[n] (max |h| into
    register ``peak``). The product saturates to a scratchpad element first, which cannot change
    the saturated sum (|h| < 2^31). ``follows``: the first pass reads acc as the call before lands it."""
    return [VectorOp(n, acc, scratch, Function.MUL, BSource.REGISTER, scale,
                     shift=apply_scale_amount(scale, nx.RES_FRAC), saturate=36, follows=follows,
                     note="residual: acc · scale"),
            VectorOp(n, scratch, h, Function.ADD, c=h, saturate=nx.RES_BITS, reduce=_peak(peak),
                     note="residual: h + y")]


def embed(row: int, n: int, row_mant: int | None, table_exp: int, h: int, peak: str | None = None) -> list:
    """``embed_token``: the int8 row at ``row`` times its row scale ``row_mant · 2^table_exp``,
    into h[n] (``row_mant`` None: register ``embed_row`` holds it, as :func:`embed_call` sets it);
    max |h| into register ``peak``."""
    return [*([ScalarOp(S.INT, "embed_row", exp=Amount(offset=row_mant))] if row_mant is not None else []),
            ScalarOp(S.FROM_INT, "embed_scale", "embed_row", exp=Amount(offset=table_exp)),
            VectorOp(n, row, h, Function.MUL, BSource.REGISTER, "embed_scale",
                     shift=apply_scale_amount("embed_scale", nx.RES_FRAC), saturate=nx.RES_BITS,
                     reduce=_peak(peak), note="embed: codes · row scale")]


def embed_call(dst: int) -> Call:
    """The token table's row of the token being run (its int8 codes) into dst and its row
    mantissa into register ``embed_row``: a call."""
    return Call("embed", (dst,), writes=("embed_row",))


def rope_call(dst: int) -> Call:
    """RoPE's cos and sin rows of the position being run (d/2 each, Q1.14) into dst[d]: a call."""
    return Call("rope", (dst,))


def gated(gate: int, up: int, n: int, gate_scale: str, up_scale: str, kind: str, square: int,
          dst: int, result: str, peak: str | None = None, between=(), follows: bool = False) -> list:
    """``gated_activation`` of gate[n] and up[n] into dst (max |dst| into register ``peak``); its
    scale into register ``result``. ``square`` holds n elements of scratch. The activation's first
    pass over gate comes first, then the instructions ``between`` (the call that makes up, say),
    then the rest of the activation and up's part. ``follows``: gate's first pass reads gate as
    the call before lands it, and up's first pass reads up as the last call in ``between`` does."""
    t = result
    program = []
    if kind == "relu2":
        program += [
            VectorOp(n, gate, function=Function.MUL, b_source=BSource.SELF, pre=Pre.RELU,
                     reduce=((Reduce.MAXABS, f"{t}_peak_sq"),), follows=follows,
                     note="gated: max relu(gate)²"),
            *between,
            ScalarOp(S.NORM_SHIFT, f"{t}_e_sq", f"{t}_peak_sq"),
            VectorOp(n, gate, square, Function.MUL, BSource.SELF, pre=Pre.RELU,
                     shift=Amount(f"{t}_e_sq"), round=Round.TRUNCATE, note="gated: relu(gate)², normalized"),
            ScalarOp(S.MUL, f"{t}_act", gate_scale, gate_scale),
            ScalarOp(S.FROM_INT, f"{t}_norm", ONE, exp=Amount(f"{t}_e_sq")),
            ScalarOp(S.MUL, f"{t}_act", f"{t}_act", f"{t}_norm")]
    elif kind == "silu":
        program += [
            VectorOp(n, gate, square, Function.MUL, BSource.REGISTER, gate_scale,
                     shift=apply_scale_amount(gate_scale, nx.SILU_FRAC), follows=follows,
                     note="gated: gate in Q.10"),
            *between,
            VectorOp(n, square, square, Function.MUL, BSource.SIGMOID, shift=Amount(offset=nx.SIGMOID_FRAC),
                     reduce=((Reduce.MAXABS, f"{t}_peak_sq"),), note="gated: silu"),
            ScalarOp(S.NORM_SHIFT, f"{t}_e_sq", f"{t}_peak_sq"),
            VectorOp(n, square, square, Function.ADD, shift=Amount(f"{t}_e_sq"), round=Round.TRUNCATE,
                     note="gated: silu, normalized"),
            ScalarOp(S.FROM_INT, f"{t}_act", ONE, exp=Amount(f"{t}_e_sq", 1, -nx.SILU_FRAC))]
    else:
        raise ValueError(f"hidden_act must be 'relu2' or 'silu', not {kind!r}")
    return program + [
        VectorOp(n, up, function=Function.ADD, reduce=((Reduce.MAXABS, f"{t}_peak_up"),), follows=follows,
                 note="gated: max |up|"),
        ScalarOp(S.NORM_SHIFT, f"{t}_e_up", f"{t}_peak_up"),
        VectorOp(n, up, dst, Function.MUL, BSource.VECTOR, square, a_shift=Amount(f"{t}_e_up"),
                 reduce=_peak(peak), note="gated: act · up_n"),
        ScalarOp(S.FROM_INT, f"{t}_norm_up", ONE, exp=Amount(f"{t}_e_up")),
        ScalarOp(S.MUL, f"{t}_up", up_scale, f"{t}_norm_up"),
        ScalarOp(S.MUL, result, f"{t}_act", f"{t}_up")]


def attend(q: int, d: int, q_scale: str, keys: int, key_mant: int, key_exp: int, values: int,
           value_mant: int, value_exp: int, positions: int, score_coef: str, z: int, p: int,
           dst: int, peak: str | None = None) -> list:
    """``attend`` for one head: int8 q[d] against ``positions`` cached keys and values ([T, d]
    from ``keys`` / ``values``, their scales' mantissas and exponents [T] at the given addresses);
    the head's output (Q15.16) into dst[d], its max |·| into register ``peak``. z and p hold
    ``positions`` elements of scratch."""
    program = []
    for j in range(positions):
        program += [
            VectorOp(d, keys + j * d, function=Function.MUL, b_source=BSource.VECTOR, b=q,
                     reduce=((Reduce.SUM, "att.dot"),), note="attend: q · k_j"),
            ScalarOp(S.LOAD, "att.k_mant", address=key_mant + j),
            ScalarOp(S.LOAD, "att.k_exp", address=key_exp + j),
            ScalarOp(S.SCALE, "att.coef", "att.k_mant", exp=Amount("att.k_exp")),
            ScalarOp(S.MUL, "att.coef", "att.coef", q_scale),
            ScalarOp(S.MUL, "att.coef", "att.coef", score_coef),
            ScalarOp(S.STORE, a="att.dot", address=z + j),
            VectorOp(1, z + j, z + j, Function.MUL, BSource.REGISTER, "att.coef",
                     shift=apply_scale_amount("att.coef", nx.SCORE_FRAC), note="attend: z_j")]
    program += [
        VectorOp(positions, z, function=Function.ADD, reduce=((Reduce.MAX, "att.z_max"),),
                 note="attend: max z"),
        VectorOp(positions, z, p, Function.EXP2, pre=Pre.RSUB, pre_register="att.z_max",
                 reduce=((Reduce.SUM, "att.p_sum"),), note="attend: p = 2^-(max z - z)"),
        ScalarOp(S.INT, "att.top", exp=Amount(offset=-(1 << 40)))]
    for j in range(positions):       # the weights' largest exponent over the live positions
        program += _weight(j, p, value_mant, value_exp) + [
            ScalarOp(S.IS_ZERO, "att.dead", "att.w_mant"),
            ScalarOp(S.SELECT, "att.w_top", "att.w_exp", "att.top", exp=Amount("att.dead")),
            ScalarOp(S.MAX, "att.top", "att.top", "att.w_top")]
    for j in range(positions):
        program += _weight(j, p, value_mant, value_exp) + [
            ScalarOp(S.ADD_INT, "att.w_shift", "att.top", exp=Amount("att.w_exp", -1)),
            ScalarOp(S.SHR, "att.aligned", "att.w_mant", "att.w_shift"),
            VectorOp(d, values + j * d, dst, Function.MUL, BSource.REGISTER, "att.aligned",
                     c=dst if j else None, note="attend: Σ aligned_j · v_j")]
    return program + [
        ScalarOp(S.SCALE, "att.row_scale", EXP_ONE, exp=Amount("att.top", 1, -(nx.SCALE_BITS - 1))),
        ScalarOp(S.FROM_INT, "att.p_total", "att.p_sum", exp=Amount(offset=-nx.EXP_FRAC)),
        ScalarOp(S.RECIP, "att.p_total", "att.p_total"),
        ScalarOp(S.MUL, "att.row_scale", "att.row_scale", "att.p_total"),
        *_row_scaled(d, dst, dst, peak)]


def attend_call(q: int, d: int, q_scales, layer: int, kv_head: int, sums: int, dst: int,
                peaks=None) -> list:
    """``attend`` for heads on the attention unit (a call, the heads' queries in flight together):
    int8 q[heads·d] (``q_scales``: each head's scale register), the first head's against kv head
    ``kv_head``'s cache in ``layer`` (:func:`cache_call`'s) and each next group of heads (the
    model's heads a kv head) against the next kv head's, up to the position being run;
    the unit writes ``attend_sums``' value sums to sums[heads·d] and each head's row scale to a
    register, and a pass a head makes its output (Q15.16) in dst[heads·d] (head h's max |·| into
    register ``peaks[h]``)."""
    heads = len(q_scales)
    scales = tuple(f"att.row_scale{h}" for h in range(heads))
    return [Call("attend", (layer, kv_head, sums), memory=((q, heads * d),), reads=tuple(q_scales),
                 writes=scales),
            *(op for h in range(heads)
              for op in _row_scaled(d, sums + h * d, dst + h * d, peaks[h] if peaks else None, scales[h]))]


def _row_scaled(d: int, sums: int, dst: int, peak: str | None, row_scale: str = "att.row_scale") -> list:
    """The head's output ``saturate(apply_scale(sums, row scale, RES_FRAC))`` into dst[d] from its
    value sums in sums[d] and the row scale in register ``row_scale``; its max |·| into ``peak``."""
    return [VectorOp(d, sums, dst, Function.MUL, BSource.REGISTER, row_scale,
                     shift=apply_scale_amount(row_scale, nx.RES_FRAC), saturate=nx.RES_BITS,
                     reduce=_peak(peak), note="attend: out · row scale")]


def cache_call(codes: int, d: int, scale: str, layer: int, part: str, kv_head: int) -> Call:
    """A head's codes[d] and its scale into the attention unit's KV cache (``part`` "k" or "v",
    ``layer``, ``kv_head``) at the position being run: a call."""
    return Call("cache", (layer, part, kv_head), memory=((codes, d),), reads=(scale,))


def _weight(j: int, p: int, value_mant: int, value_exp: int) -> list:
    """Position j's softmax weight ``scale_mul(scale_from_int(p_j, -15), vs_j)`` into w_mant, w_exp."""
    return [ScalarOp(S.LOAD, "att.p_j", address=p + j),
            ScalarOp(S.FROM_INT, "att.w", "att.p_j", exp=Amount(offset=-nx.EXP_FRAC)),
            ScalarOp(S.LOAD, "att.v_mant", address=value_mant + j),
            ScalarOp(S.LOAD, "att.v_exp", address=value_exp + j),
            ScalarOp(S.SCALE, "att.vs", "att.v_mant", exp=Amount("att.v_exp")),
            ScalarOp(S.MUL, "att.w", "att.w", "att.vs"),
            ScalarOp(S.MANT, "att.w_mant", "att.w"),
            ScalarOp(S.EXP, "att.w_exp", "att.w")]


def lm_head_call(vocab: int, n: int, x: int, logits: int, result: str) -> list:
    """``lm_head_logits`` of the int8 codes x[n] on the token table (a call) into logits[vocab];
    greedy ``sample``'s token into register ``result``."""
    return [Call("lm_head", (logits,), memory=((x, n),)), _first_largest(vocab, logits, result)]


def _first_largest(vocab: int, logits: int, result: str) -> VectorOp:
    return VectorOp(vocab, logits, function=Function.ADD, reduce=((Reduce.ARGMAX, result),),
                    note="sample: the first largest logit")


def lm_head(table: int, rows: int, vocab: int, n: int, x: int, logits: int, result: str) -> list:
    """``lm_head_logits`` of the int8 codes x[n] against the table (codes [vocab, n] at ``table``,
    row mantissas [vocab] at ``rows``) into logits[vocab]; greedy ``sample``'s token into register
    ``result``."""
    program = []
    for v in range(vocab):
        program += [VectorOp(n, table + v * n, function=Function.MUL, b_source=BSource.VECTOR, b=x,
                             reduce=((Reduce.SUM, "lm.dot"),), note="lm head: codes_v · x"),
                    ScalarOp(S.LOAD, "lm.row", address=rows + v),
                    ScalarOp(S.MUL_INT, "lm.logit", "lm.dot", "lm.row"),
                    ScalarOp(S.STORE, a="lm.logit", address=logits + v)]
    return program + [_first_largest(vocab, logits, result)]


def _detached(program) -> bool:
    """The program's last call is a detached one: its results are not there yet."""
    calls = [op for op in program if isinstance(op, Call)]
    return bool(calls) and calls[-1].detach


class Layout:
    """Named regions of the scratchpad, allocated in order, each on a multiple of ``align``."""

    def __init__(self, align: int = 16):
        self.regions: dict[str, tuple[int, int]] = {}
        self.size, self.align = 0, align

    def add(self, name: str, n: int) -> int:
        if name in self.regions:
            raise ValueError(f"region {name!r} is already allocated")
        base = -(-self.size // self.align) * self.align
        self.regions[name] = (base, n)
        self.size = base + n
        return base

    def __getitem__(self, name: str) -> int:
        return self.regions[name][0]


class ProgramModel:
    """An ``IntegerModel`` whose every step but the ternary matmul runs as vector-unit programs.

    :meth:`token_program` is one token's instructions: embedding, norms and their codes, RoPE,
    per-head codes and the KV cache's new entries, attention over the cache, the gated activation,
    the residual adds, the LM head and greedy sampling, on one scratchpad (the model's tables,
    gains, RoPE tables and KV cache in it). The weights' ternary products (the array's work) are
    :class:`~hw.vector_isa.Call` instructions that :meth:`serve` answers with ``ternary_matmul``, as are the
    trace points. ``step`` returns what ``IntegerModel.step`` does, so the programs can be checked
    against the contract a whole token at a time, on :class:`~hw.vector_isa.VectorMachine` here and
    on the gateware (``tests/hw/test_vector_core.py``).

    With ``units``, the program is :class:`~hw.vector_engine.VectorEngine`'s, the same instructions
    for every token and position (the engine's inputs): attention runs on the attention unit
    (:class:`~hw.attention.AttentionHead`; the KV cache is the unit's, written and read through
    :func:`cache_call` and :func:`attend_call`, which :meth:`serve` answers with ``attend_sums``);
    the embedding's row and the LM head's logits come from the token table
    (:class:`~hw.token_table.TokenTable`; :func:`embed_call`, :func:`lm_head_call`); RoPE's rows
    for the position from a table (:func:`rope_call`). The scratchpad then holds the working
    vectors and the gains only. The program ends with the logits' scale (:meth:`logit_scale`) in
    register ``logit_scale``, for a sampler.

    The layout ends with what the units write and only a pass's a reads (from ``results`` on: the
    matmuls' products, the heads' sums, the embedding's row), so a core may keep them in a memory of
    their own (:meth:`memories`); k's, v's and up's products are detached calls, landing while q's,
    k's and gate's own steps run.
    """

    def __init__(self, model, units: bool = False):
        self.model, self.units = model, units
        self.kv = {}            # the attention unit's cache: (layer, part, kv head, position): (codes, scale)
        self.token = self.position = 0      # what the calls are served for (token_program's)
        cfg = self.config = model.config
        d, heads, kv = cfg.dim_per_head, cfg.num_attention_heads, cfg.num_key_value_heads
        hidden, inter, positions = cfg.hidden_size, cfg.intermediate_size, cfg.max_position_embeddings
        widest = max(hidden, inter, heads * d)
        lay = self.layout = Layout()
        # scratch: a step's temporary (a norm's u, the residual's product, RoPE's, the gated
        # activation's square, k's and v's head codes until their cache calls)
        for name, n in (("h", hidden), ("x", widest), ("scratch", widest), ("gated", widest),
                        ("rotated", heads * d), ("q", heads * d), ("out", heads * d),
                        ("logits", cfg.vocab_size)):
            lay.add(name, n)
        if units:
            lay.add("rope_row", d)                  # cos and sin of the position being run
        else:
            lay.add("z", positions)                 # attention's scores and weights
            lay.add("p", positions)
            lay.add("cos", positions * (d // 2))
            lay.add("sin", positions * (d // 2))
            for name, n in (("embed", cfg.vocab_size * hidden), ("lm_table", cfg.vocab_size * hidden),
                            ("lm_rows", cfg.vocab_size)):
                lay.add(name, n)
        self.gains = {}
        for i, layer in enumerate(model.layers):
            for norm in NORMS:
                gain = getattr(layer, norm)
                self.gains[i, norm] = (lay.add(f"gain.{i}.{norm}", gain.values.size), gain)
            for part in ("k", "v") if not units else ():
                for g in range(kv):
                    lay.add(f"{part}.{i}.{g}", positions * d)
                    lay.add(f"{part}_mant.{i}.{g}", positions)
                    lay.add(f"{part}_exp.{i}.{g}", positions)
        self.gains["norm"] = (lay.add("gain.norm", hidden), model.norm)
        # last, what the units beside the core write: the matmuls' products, and (one program for
        # every token) the attention heads' sums and the embedding's row. Only a pass's a reads
        # them, so they may be a memory of their own
        self.results = lay.add("acc", widest)
        lay.add("acc2", widest)
        if units:
            lay.add("sums", heads * d)
            lay.add("embedded", hidden)
        self.memory = {}
        if not units:
            self.memory.update({lay["cos"]: model.rope_cos, lay["sin"]: model.rope_sin,
                                lay["embed"]: model.embed.codes, lay["lm_table"]: model.lm_head.codes,
                                lay["lm_rows"]: model.lm_head.rows})
        for address, gain in self.gains.values():
            self.memory[address] = gain.values
        constant = VectorMachine(1)
        constant.run(constants())
        self.registers = dict(constant.registers)       # what a run starts from: constants and scales
        for name, scale in (("eps", model.eps), ("score_coef", model.score_coef), ("res_unit", nx.RES_UNIT)):
            self._set_scale(name, scale)
        for i, layer in enumerate(model.layers):
            for matrix in MATRICES:
                self._set_scale(f"gamma.{i}.{matrix}", getattr(layer, matrix).gamma)
        for key, (_, gain) in self.gains.items():
            self._set_scale(f"inv_len.{key}", gain.inv_len)
        if units:           # the logits' scale is D · lm_unit (logit_scale)
            self._set_scale("lm_unit", nx.scale_from_int(1, model.lm_head.exp))
        self.machine = machine = VectorMachine(lay.size)
        for address, values in self.memory.items():
            machine.write(address, values)
        machine.registers = dict(self.registers)
        self._trace = None

    def memories(self, lanes: int) -> dict:
        """A core's ``Program`` sizes for the layout on ``lanes`` lanes: the scratchpad's ``depth``
        and the ``results`` memory (the matmuls' results, from ``self.results`` on)."""
        return {"depth": self.results, "results": -(-(self.layout.size - self.results) // lanes) * lanes}

    def _set_scale(self, name: str, scale) -> None:
        self.registers[name] = (int(scale[0]), int(scale[1]))

    def _norm(self, key, x: int, n: int, x_scale: str, dst: int, result: str, peak: str, between=(),
              then=()) -> tuple[list, list]:
        """The norm ``key`` of x[n], whose max |x| the pass that wrote it left in register ``peak``,
        with the instructions ``between`` once its codes are made (the matmul that reads them); and
        what is left of ``then`` (the next step's instructions): its first, if it reads no register
        (a pass reading the matmul's products as they land), runs beside the norm's scale arithmetic
        (rms_quantize's ``overlap``)."""
        address, gain = self.gains[key]
        then = list(then)
        overlap = then[:1] if then and isinstance(then[0], VectorOp) and not then[0].registers else []
        norm = rms_quantize(x, n, x_scale, address, gain.exp, f"inv_len.{key}", "eps", self.layout["scratch"],
                            dst, result, peak, between, overlap)
        return norm, then[len(overlap):]

    def _norm_product(self, layer: int, key: str, x: int, n: int, x_scale: str, peak: str, matrix: str,
                      dst: str, scale: str, trace_fields: dict, then) -> list:
        """The norm ``key`` of x[n] (its codes into region x, its scale into ``norm_scale``), the
        matmul of ``matrix`` on the codes into region ``dst`` (detached, started once the codes are
        made), its trace, the matmul's scale into register ``scale``, and the next step's
        instructions ``then``, the first of which may run beside the norm's scale (:meth:`_norm`)."""
        k = getattr(self.model.layers[layer], matrix).codes.shape[1]
        norm, rest = self._norm((layer, key), x, n, x_scale, self.layout["x"], "norm_scale", peak,
                                between=[self._product(layer, matrix, k, dst)], then=then)
        trace = self._trace_point(layer, key, **trace_fields, codes=(self.layout["x"], k), scale="norm_scale")
        return [*norm, trace, self._product_scale(layer, matrix, scale), *rest]

    def _linear(self, layer: int, matrix: str, n: int, dst: str, scale: str, detach: bool = False) -> list:
        """The array's product of the codes in x into region ``dst`` (a call; ``detach``: the program
        goes on while it lands); its scale D·γ into ``scale``."""
        return [self._product(layer, matrix, n, dst, detach), self._product_scale(layer, matrix, scale)]

    def _product(self, layer: int, matrix: str, n: int, dst: str, detach: bool = True) -> Call:
        """:meth:`_linear`'s call."""
        lay = self.layout
        return Call("matmul", (layer, matrix, lay[dst]), memory=((lay["x"], n),), detach=detach)

    @staticmethod
    def _product_scale(layer: int, matrix: str, scale: str) -> ScalarOp:
        """:meth:`_linear`'s scale, once the norm's scale is made."""
        return ScalarOp(S.MUL, scale, "norm_scale", f"gamma.{layer}.{matrix}")

    def _trace_point(self, layer: int, step: str, **fields) -> Call:
        """A trace call: each field a region (address, n), a register name (a scale) or a tuple of
        them (scales, as IntegerModel's trace gives them: mantissas and exponents)."""
        memory = tuple(v for v in fields.values() if isinstance(v, tuple) and isinstance(v[0], int))
        reads = tuple(name for v in fields.values() if not (isinstance(v, tuple) and isinstance(v[0], int))
                      for name in ((v,) if isinstance(v, str) else v))
        kinds = tuple((name, "memory" if isinstance(v, tuple) and isinstance(v[0], int) else
                       "scale" if isinstance(v, str) else len(v)) for name, v in fields.items())
        return Call("trace", (layer, step, kinds), memory=memory, reads=reads)

    def serve(self, call: Call, regions: list, registers: dict) -> list:
        """A call's answer: the array's product (the elements to write); a cache entry kept (none);
        an attention head's value sums and row scale; the token table's row or logits; or a trace
        (none)."""
        if call.kind == "wait":
            return []
        if call.kind == "matmul":
            layer, matrix, dst = call.args
            return [(dst, ternary_matmul(getattr(self.model.layers[layer], matrix).codes, regions[0]))]
        if call.kind == "embed":
            return [(call.args[0], self.model.embed.codes[self.token]),
                    ("embed_row", int(self.model.embed.rows[self.token]))]
        if call.kind == "rope":
            return [(call.args[0], np.concatenate([self.model.rope_cos[self.position],
                                                   self.model.rope_sin[self.position]]))]
        if call.kind == "lm_head":
            return [(call.args[0], lm_head_logits(self.model.lm_head, regions[0]))]
        if call.kind == "cache":
            self.kv[(*call.args, self.position)] = (regions[0], registers[call.reads[0]])
            return []
        if call.kind == "attend":
            layer, first, dst = call.args
            cfg, answers = self.config, []
            d, group = cfg.dim_per_head, cfg.num_attention_heads // cfg.num_key_value_heads
            caches = {}             # each kv head's, gathered once for its group of heads
            for h, (scale, row) in enumerate(zip(call.reads, call.writes)):
                kv_head = first + h // group
                if kv_head not in caches:
                    caches[kv_head] = [self._cached(layer, part, kv_head, self.position + 1)
                                       for part in ("k", "v")]
                (keys, key_scales), (values, value_scales) = caches[kv_head]
                query = regions[0][h * d:(h + 1) * d]
                sums, row_scale = attend_sums(query, registers[scale], keys, key_scales, values, value_scales,
                                              self.model.score_coef)
                answers += [(dst + h * d, sums), (row, (int(row_scale[0]), int(row_scale[1])))]
            return answers
        layer, step, kinds = call.args
        regions, names, values = iter(regions), iter(call.reads), {}
        for name, kind in kinds:
            if kind == "memory":
                values[name] = next(regions)
            elif kind == "scale":
                values[name] = registers[next(names)]
            else:
                scales = [registers[next(names)] for _ in range(kind)]
                values[name] = (np.array([s[0] for s in scales]), np.array([s[1] for s in scales]))
        if self._trace:
            self._trace(layer, step, **values)
        return []

    def _cached(self, layer: int, part: str, kv_head: int, positions: int) -> tuple:
        """The attention unit's cache entries 0 … positions − 1: codes [T, d] and scales ([T], [T])."""
        entries = [self.kv[layer, part, kv_head, j] for j in range(positions)]
        return (np.stack([codes for codes, _ in entries]),
                (np.array([s[0] for _, s in entries]), np.array([s[1] for _, s in entries])))

    def token_program(self, token: int, position: int) -> list:
        """One token's instructions at ``position`` (the KV cache holds the positions before it);
        its logits end in region ``logits``, their scale's D in register ``norm_scale``. With
        ``units`` they are the same for every token and position; :meth:`serve` then answers
        the calls for this token and position."""
        self.token, self.position = token, position
        cfg, lay, trace = self.config, self.layout, self._trace_point
        d, heads, kv = cfg.dim_per_head, cfg.num_attention_heads, cfg.num_key_value_heads
        hidden, inter, group, half = cfg.hidden_size, cfg.intermediate_size, heads // kv, d // 2
        if self.units:
            program = [embed_call(lay["embedded"]), rope_call(lay["rope_row"]),
                       *embed(lay["embedded"], hidden, None, self.model.embed.exp, lay["h"], "h_peak")]
            cos, sin = lay["rope_row"], lay["rope_row"] + half
        else:
            program = embed(lay["embed"] + token * hidden, hidden, int(self.model.embed.rows[token]),
                            self.model.embed.exp, lay["h"], "h_peak")
            cos, sin = lay["cos"] + position * half, lay["sin"] + position * half
        program.append(trace(0, "embed", h=(lay["h"], hidden)))
        for i in range(len(self.model.layers)):
            # q's product first, RoPE's first pass reading it as it lands; k's lands in acc2 while
            # q's heads are made, v's in acc while k's are
            products = (("q_proj", heads, "acc"), ("k_proj", kv, "acc2"), ("v_proj", kv, "acc"))
            for j, (matrix, count, results) in enumerate(products):
                following = []
                if j + 1 < len(products):
                    name, _, region = products[j + 1]
                    following = self._linear(i, name, hidden, region, f"{name}_acc_scale", detach=True)
                source, peaks = lay[results], None
                if matrix != "v_proj":
                    peaks = f"{matrix}_peak"
                    steps = rope(source, count, d, cos, sin, lay["scratch"], lay["rotated"], peaks,
                                 follows=matrix == "q_proj", between=following,
                                 then_peak=head_scalars(peaks, f"{matrix}_scale"))
                    if matrix == "q_proj":
                        steps = self._norm_product(i, "input_layernorm", lay["h"], hidden, "res_unit",
                                                   "h_peak", matrix, "acc", "q_proj_acc_scale", {}, steps)
                    program += steps
                    source = lay["rotated"]
                else:
                    program += following
                target = lay["q"] if matrix == "q_proj" else lay["scratch"]
                if matrix == "v_proj" and _detached(program):
                    program.append(Call("wait"))
                program += quantize_heads(source, count, d, f"{matrix}_acc_scale", target, f"{matrix}_scale",
                                          peaks, prepared=peaks is not None)
                scales = tuple(f"{matrix}_scale{h}" for h in range(count))
                program.append(trace(i, matrix, head_codes=(target, count * d), head_scales=scales))
                if matrix != "q_proj":
                    for g in range(kv):
                        if self.units:
                            program.append(cache_call(target + g * d, d, scales[g], i, matrix[0], g))
                            continue
                        program += cache_entry(target + g * d, d, scales[g],
                                               lay[f"{matrix[0]}.{i}.{g}"] + position * d,
                                               lay[f"{matrix[0]}_mant.{i}.{g}"] + position,
                                               lay[f"{matrix[0]}_exp.{i}.{g}"] + position)
            for h in range(heads):
                g = h // group
                if self.units:
                    if h == 0:                  # every head's query, together
                        program += attend_call(lay["q"], d, [f"q_proj_scale{m}" for m in range(heads)],
                                               i, 0, lay["sums"], lay["out"],
                                               [f"att.peak{m}" for m in range(heads)])
                else:
                    program += attend(lay["q"] + h * d, d, f"q_proj_scale{h}", lay[f"k.{i}.{g}"],
                                      lay[f"k_mant.{i}.{g}"], lay[f"k_exp.{i}.{g}"], lay[f"v.{i}.{g}"],
                                      lay[f"v_mant.{i}.{g}"], lay[f"v_exp.{i}.{g}"], position + 1,
                                      "score_coef", lay["z"], lay["p"], lay["out"] + h * d, f"att.peak{h}")
                if h:           # the heads' peaks: the output's
                    program.append(ScalarOp(S.MAX, "out_peak", "out_peak" if h > 1 else "att.peak0",
                                            f"att.peak{h}"))
            residual = dequantize_add(lay["acc"], hidden, "acc_scale", lay["h"], lay["scratch"], "h_peak",
                                      follows=True)
            program += self._norm_product(i, "attn_sub_norm", lay["out"], heads * d, "res_unit",
                                          "out_peak" if heads > 1 else "att.peak0", "o_proj", "acc",
                                          "acc_scale", {"input": (lay["out"], heads * d)}, residual)
            program.append(trace(i, "o_proj", h=(lay["h"], hidden)))
            # gate's product, then up's (landing while gate's activation is made); each's first
            # pass reads it as it lands
            up = self._linear(i, "up_proj", hidden, "acc2", "up_scale", detach=True)
            activation = gated(lay["acc"], lay["acc2"], inter, "gate_scale", "up_scale", cfg.hidden_act,
                               lay["scratch"], lay["gated"], "hidden_scale", "gated_peak", between=up,
                               follows=True)
            program += self._norm_product(i, "post_attention_layernorm", lay["h"], hidden, "res_unit",
                                          "h_peak", "gate_proj", "acc", "gate_scale", {}, activation)
            residual = dequantize_add(lay["acc"], hidden, "acc_scale", lay["h"], lay["scratch"], "h_peak",
                                      follows=True)
            program += self._norm_product(i, "ffn_sub_norm", lay["gated"], inter, "hidden_scale",
                                          "gated_peak", "down_proj", "acc", "acc_scale",
                                          {"input": (lay["gated"], inter)}, residual)
            program.append(trace(i, "down_proj", h=(lay["h"], hidden)))
        program += self._norm("norm", lay["h"], hidden, "res_unit", lay["x"], "norm_scale", "h_peak")[0]
        if self.units:
            program += lm_head_call(cfg.vocab_size, hidden, lay["x"], lay["logits"], "token")
            program.append(ScalarOp(S.MUL, "logit_scale", "norm_scale", "lm_unit"))
        else:
            program += lm_head(lay["lm_table"], lay["lm_rows"], cfg.vocab_size, hidden, lay["x"],
                               lay["logits"], "token")
        program.append(trace(0, "norm", codes=(lay["x"], hidden), scale="norm_scale",
                             logits=(lay["logits"], cfg.vocab_size)))
        return program

    def logit_scale(self, norm_scale) -> tuple[int, int]:
        """The logits' scale from the final norm's D (register ``norm_scale`` after a token)."""
        scale = nx.scale_mul(norm_scale, nx.scale_from_int(1, self.model.lm_head.exp))
        return int(scale[0]), int(scale[1])

    def step(self, token: int, position: int, trace=None):
        """``IntegerModel.step`` at ``position`` (the KV cache holds the positions before it):
        integer logits and the logit scale; ``trace`` as there, for the steps it names."""
        self._trace = trace
        try:
            self.machine.run(self.token_program(token, position), self.serve)
        finally:
            self._trace = None
        m = self.machine
        logits = m.read(self.layout["logits"], self.config.vocab_size)
        return logits, self.logit_scale(m.registers["norm_scale"])
