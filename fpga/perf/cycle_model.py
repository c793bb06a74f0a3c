"""The engine's clock cycles per token, predicted from the architecture (docs/performance.md).

Every term is a block's documented timing, read through the static twin of its ``latency`` or
``cycles`` (``TernaryArray.latency_of``, ``TernaryLinear.latency_of``,
``AbsmaxQuantizer.reload_of``, ``HeadQuantizer.latency_of``, ``HeadQuantizer.scale_cycles_of``,
``RmsQuantizer.cycles_of``, ``RmsQuantizer.codes_latency_of``, ``AttentionHead.passes_of``,
``GatedActivation.cycles_of``, ``TokenTable.row_cycles_of``, ``TokenTable.logit_cycles_of``,
``Sampler.cycles_of``, ``ScaleUnit.cycles_of``, ``Rope.latency_of``, ``Dequantizer.latency_of``)
put together the way :class:`hw.engine.Engine`'s sequencer runs the program of
:func:`hw.sequencer.program`: one instruction after another, a matmul's results queued in the
result FIFO while its output path (RoPE, the per-head quantizer, the residual add, the gated
activation) drains them a word a cycle, the next product of the same codes started once the array
is free. Nothing here is fitted to a simulation; the validation
(``tritium bench explore``) sets these predictions beside Verilator's counts.

Cycles are split by the engine's own :class:`hw.engine.Phase` rules (the array busy first, then
what the sequencer waits on), so each phase can be checked against the engine's counters.
"""

import functools

from hw.attention import AttentionHead
from hw.dequantizer import Dequantizer
from hw.engine import RESULT_FIFO_DEPTH, EngineSizes, Phase, narrow_lanes, result_drain
from hw.gated_activation import GatedActivation
from hw.head_quantizer import HeadQuantizer
from hw.linear import TernaryLinear
from hw.quantizer import AbsmaxQuantizer
from hw.rms_quantizer import RmsQuantizer
from hw.rope import Rope
from hw.sampler import Sampler
from hw.scale_unit import ScaleOp, ScaleUnit
from hw.sequencer import MATRICES, Op, Route, Source, program
from hw.skid_buffer import SkidBuffer
from hw.ternary_array import TernaryArray
from hw.token_table import TokenTable

FETCH = 2               # the sequencer's DECODE and FETCH states, once per instruction
START = 1               # a MATMUL's START state (the start transfer)
LOOKUP = TernaryLinear.latency_of()   # look the matrix up, read its first weight word
SCALE_PRODUCT = ScaleUnit.cycles_of(ScaleOp.MUL) + 3   # register, issue, multiply, store (D·γ, logit scale, coef)
GREEDY = True


def phases(**cycles) -> dict:
    counts = {p.name.lower(): 0 for p in Phase}
    counts.update(cycles)
    return counts


def add(total: dict, part: dict) -> dict:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value
    return total


# -- the matmul and its output path -------------------------------------------------------------

def _produced(n: int, k: int, rows: int, simd: int, drain: int) -> list[int]:
    """When each of the ``n`` results leaves the array (from the start transfer), ``drain`` a
    transfer, no stalls."""
    chunks = -(-k // simd)
    period = max(chunks, rows // drain)
    latency = TernaryArray.latency_of(simd)
    return [LOOKUP + (i // rows) * period + chunks + latency + (i % rows) // drain - 1 for i in range(n)]


@functools.lru_cache(maxsize=None)
def output_path(n: int, k: int, route: Route, d_wait: int, sizes: EngineSizes,
                head_dim: int, drain: int = 1, units: int | None = None, lead: int = 0,
                heads_state: tuple = (0, 0, 0, 0, 0, 0), narrow: int | None = None) -> tuple[int, int, tuple]:
    """(the array's last result, the MATMUL instruction's cycles, the head quantizer's state after
    it) from its first cycle: results leave
    the array ``drain`` a transfer (:func:`hw.engine.result_drain`) into the FIFO and leave it a
    word a cycle as the route takes them (the heads through RoPE at ``drain`` lanes into the head
    quantizer, whose two AbsmaxQuantizers take the heads in turn). The product started ``lead``
    cycles before the instruction did (a MATMUL after one of the same codes: the previous one
    started it once the array was free); else it starts here. ``D·γ`` is made once the norm's D
    is out (``d_wait`` cycles after the start) while they leave. The residual add waits for it
    from its first element, the head quantizer and the gated activation at a vector's last beat;
    the instruction ends when the route's last write is done and ``D·γ`` is made, q's and k's once
    their last head is in the head quantizer: its state (each AbsmaxQuantizer's input and codes
    free, the latest scale taken, relative to this instruction's start, and the AbsmaxQuantizer
    the next head goes to) comes in as ``heads_state`` and goes on to the next heads' MATMUL.
    ``narrow``: the engine's output lanes (:func:`hw.engine.narrow_lanes` unless given)."""
    produced = [t - lead for t in _produced(n, k, sizes.rows, sizes.simd, drain)]
    enabled = max(d_wait, 0) + SCALE_PRODUCT
    heads = route in (Route.Q, Route.K, Route.V)
    lanes = narrow_lanes(sizes.lanes, narrow)     # the head quantizer's
    words = head_dim // lanes             # the head quantizer's beats a head
    beats = head_dim // drain             # RoPE's (and the FIFO's words) a head
    # per head: RoPE's banks and emission; each AbsmaxQuantizer's load side and codes side
    rope_free = [0, 0]          # each of RoPE's two banks: free from this cycle
    rope_emitted = -2           # RoPE's previous head emitted (the next starts two cycles on)
    first_b = 0                 # the head's first b word into RoPE
    # each AbsmaxQuantizer takes a new head's input from quantizer_free, its codes side is free
    # (its previous head's codes are out) from codes_free; the previous head's scale taken (the
    # next one latches after); the AbsmaxQuantizer the first head goes to
    quantizer_free, codes_free = list(heads_state[0:2]), list(heads_state[2:4])
    scale_taken, turn = heads_state[4:]
    reload = AbsmaxQuantizer.reload_of(lanes)
    out = -1                    # the previous word's FIFO read
    reads = []                  # each FIFO word's read, to stall the array when it is full
    delay = 0
    busy_end = 0
    end = 0
    for word in range(n // drain):
        ready = produced[word * drain]
        if word >= RESULT_FIFO_DEPTH:                   # the array stalls on a full FIFO
            delay = max(delay, reads[word - RESULT_FIFO_DEPTH] + 1 - ready)
        ready += delay
        busy_end = ready
        t = max(ready + 1, out + 1)
        last = word == n // drain - 1
        held = (route == Route.V and word % beats == beats - 1) or (route == Route.UP and last)
        if route == Route.RESIDUAL or held:
            t = max(t, enabled)
        head, beat = divmod(word, beats)
        quantizer = (head + turn) % 2
        if heads and beat == 0:
            if route != Route.V:
                t = max(t, rope_free[head % 2])
            else:
                t = max(t, quantizer_free[quantizer] - 1)
        out = t
        reads.append(t)
        if heads and beat == beats // 2:
            first_b = t
        if heads and beat == beats - 1:
            last_in = t
            if route != Route.V:             # RoPE emits a'_j once b_j is in, then the b'_j
                emit = max(first_b + Rope.latency_of(), quantizer_free[quantizer] - 1, rope_emitted + 2)
                rope_emitted = max(emit + beats - 1, last_in + Rope.latency_of() + beats // 2)
                rope_free[head % 2] = rope_emitted + 1
                last_in = max(rope_emitted + SkidBuffer.latency, enabled)   # through a skid
            # the head's AbsmaxQuantizer (two banks): the head moves on to its division once its
            # peak is in and that quantizer's previous head's codes are out; the codes leave in
            # head order, each head's after the previous head's scale is taken
            handoff = max(last_in + reload - 1, codes_free[quantizer])
            latch = max(handoff + HeadQuantizer.latency_of(lanes) - reload + 1, scale_taken + 1)
            codes_end = latch + words
            scale_valid = latch + HeadQuantizer.scale_cycles_of() + 1
            scale_taken = max(codes_end + SkidBuffer.latency + 1, scale_valid) + 1   # codes via a skid
            quantizer_free[quantizer] = handoff + 1
            codes_free[quantizer] = codes_end + 1
            # q and k end with their last head in; v once its last scale is taken
            end = last_in + 1 if route != Route.V else scale_taken
    if not heads:
        # (the residual's last beat is taken with its last part, dequantizer_parts − 1 cycles on)
        tail = {Route.RESIDUAL: (dequantizer_parts(sizes, units) + Dequantizer.latency_of()
                                 + 2 * SkidBuffer.latency + 1),      # (its feed's skid, its output's)
                Route.GATE: 1, Route.UP: 2}[route]
        end = out + tail
    state = (*quantizer_free, *codes_free, scale_taken, (n // beats + turn) % 2) if heads else heads_state
    return busy_end, max(end, enabled + 1), state


def dequantizer_parts(sizes: EngineSizes, units: int | None = None) -> int:
    """Cycles the engine's Dequantizer takes a beat in: it computes ``units`` a cycle (the
    engine's ``dequantizer_units``; ``narrow_lanes`` unless given)."""
    return sizes.lanes // (units or narrow_lanes(sizes.lanes))


# -- the vector steps ---------------------------------------------------------------------------

def feed_and_codes(beats: int, lanes: int, ratio: int = 1) -> int:
    """From a NORM's last input beat into the RmsQuantizer to its last code, at ``ratio`` beats a
    word (the engine's ``norm_ratio``): the feed's first pass (read, normalize, multiply), the
    AbsmaxQuantizer's latency to the first code of the second pass, the codes out, and the
    instruction seeing them done (the codes pass the engine's skid to their sinks). The first pass
    is ``words + 7``: the last beat stored, the shift ``e`` made, then per word a read, the
    registered read data and gains, the registered normalized magnitudes and signed gains, and the
    products registered (their skid buffer into the AbsmaxQuantizer is in ``codes_latency_of``)."""
    words = -(-beats // ratio)
    return (words + 7) + RmsQuantizer.codes_latency_of(lanes * ratio) + SkidBuffer.latency + words + 1


def norm_from_buffer(beats: int, lanes: int, ratio: int = 1) -> int:
    """A NORM of ``beats`` beats already in a buffer: the read pass loading the RmsQuantizer, then
    :func:`feed_and_codes` (the instruction ends with the last code)."""
    return 1 + beats + feed_and_codes(beats, lanes, ratio)


def forwarded_norm(beats: int, lanes: int, ratio: int = 1) -> int:
    """A NORM of H right after the residual add that wrote it: the sums went into the RmsQuantizer
    as they were written, the last one ``1 + FETCH`` cycles before the NORM began (the residual's
    end and this instruction's fetch), so only the rest of :func:`feed_and_codes` is left."""
    return max(0, feed_and_codes(beats, lanes, ratio) - 1 - FETCH)


def norm_scale_after_codes(beats: int, lanes: int, ratio: int = 1) -> int:
    """How long after a NORM's last code its scale D is out (``RmsQuantizer.cycles`` from the first
    beat, which the read pass offers one cycle in)."""
    return 1 + RmsQuantizer.cycles_of(beats, ratio) - norm_from_buffer(beats, lanes, ratio)


def attention_cycles(cfg, sizes: EngineSizes, length: int, ratio: int = 1, units: int | None = None) -> int:
    """The attn_sub_norm NORM: every query head through the AttentionHead over ``length``
    positions, the last head's output into the RmsQuantizer, its feed, latency and codes. Three
    heads are in flight (one scored, one weighed, one summed and output), ``AttentionHead.period_of``
    apart; the last head's weights, values, row scale and output follow its scores."""
    words = cfg.dim_per_head // sizes.attention_lanes
    passes = AttentionHead.passes_of(length, words, sizes.attention_lanes)
    out_beats = cfg.dim_per_head // (units or narrow_lanes(sizes.lanes))   # as the Dequantizer takes it
    period = AttentionHead.period_of(length, words, sizes.attention_lanes, out_beats)
    last = (words + passes["scores"] + 1 + passes["weights"] + 1
            + max(passes["values"], passes["row_scale"]) + Dequantizer.latency_of() + out_beats
            + 3 * SkidBuffer.latency)   # the engine's skids after the head, into and after the Dequantizer
    beats = cfg.hidden_size // sizes.lanes
    return 2 + (cfg.num_attention_heads - 1) * period + last + feed_and_codes(beats, sizes.lanes, ratio)


def gated_norm_cycles(cfg, sizes: EngineSizes, ratio: int = 1) -> int:
    """The ffn_sub_norm NORM: the gated activation's scale and emit pass (its input came with
    up_proj) through the engine's skid into the RmsQuantizer, then its feed, latency and codes."""
    beats = cfg.intermediate_size // sizes.lanes
    emit = GatedActivation.cycles_of(cfg.hidden_act, beats, sizes.lanes) - beats   # last input to last out
    return 1 + emit + SkidBuffer.latency + feed_and_codes(beats, sizes.lanes, ratio)


def lm_head_cycles(cfg, sizes: EngineSizes, greedy: bool = GREEDY, ratio: int = 1) -> int:
    """The final NORM into the LM head and the SAMPLE: the norm's codes, the logits of every row
    (``TokenTable.logit_cycles``), the sampler (greedy: 2; sampled: the scale products first and
    ``Sampler.cycles`` for a token in the middle of the vocabulary)."""
    beats = cfg.hidden_size // sizes.lanes
    logits = TokenTable.logit_cycles_of(cfg.vocab_size, cfg.hidden_size // sizes.head_lanes)
    cycles = norm_from_buffer(beats, sizes.lanes, ratio) + logits
    if greedy:
        return cycles + Sampler.cycles_of(cfg.vocab_size, 0, True)
    return (cycles + max(0, norm_scale_after_codes(beats, sizes.lanes, ratio)) + 2 * SCALE_PRODUCT
            + Sampler.cycles_of(cfg.vocab_size, cfg.vocab_size // 2, False))


# -- a position --------------------------------------------------------------------------------

def body_cycles(cfg, sizes: EngineSizes, position: int, ratio: int = 1, units: int | None = None,
                narrow: int | None = None) -> dict:
    """Cycles by phase of the layers at ``position`` (EMBED to STEP: a prompt token), the norms at
    ``ratio`` beats a word (the engine's ``norm_ratio``), the Dequantizer at ``units`` elements a
    cycle (its ``dequantizer_units``), the output path ``narrow`` results a cycle (its
    ``output_lanes``)."""
    steps = program(cfg)
    shapes = dict(zip(MATRICES, cfg.linear_shapes().values()))
    narrow = narrow_lanes(sizes.lanes, narrow)
    units = units or narrow
    drain = result_drain(sizes.rows, sizes.lanes, [n for n, _ in shapes.values()], cfg.dim_per_head, narrow)
    total = phases()
    d_wait = 0              # cycles from the end of the latest NORM to its D
    lead = 0                # a MATMUL's product started this long before it (by the previous one)
    heads_state = (0, 0, 0, 0, 0, 0)  # the head quantizer's (output_path)
    previous = None
    for i, step in enumerate(steps):
        if step.op == Op.STEP:
            add(total, phases(control=FETCH))
            break
        if step.op == Op.EMBED:
            # the row through the engine's Dequantizer into H
            words = cfg.hidden_size // sizes.lanes      # taken by the Dequantizer a beat in its parts
            add(total, phases(control=FETCH, vector=TokenTable.row_cycles_of(words)
                              + words * (dequantizer_parts(sizes, units) - 1)
                              + Dequantizer.latency_of() + 2 * SkidBuffer.latency))
        elif step.op == Op.NORM:
            beats = cfg.hidden_size // sizes.lanes
            if step.source == Source.ATTENTION:
                add(total, phases(control=FETCH,
                                  attention=attention_cycles(cfg, sizes, position + 1, ratio, units)))
            elif step.source == Source.GATED:
                beats = cfg.intermediate_size // sizes.lanes
                add(total, phases(control=FETCH, vector=gated_norm_cycles(cfg, sizes, ratio)))
            elif previous is not None and previous.route == Route.RESIDUAL:
                add(total, phases(control=FETCH, vector=forwarded_norm(beats, sizes.lanes, ratio)))
            else:
                add(total, phases(control=FETCH, vector=norm_from_buffer(beats, sizes.lanes, ratio)))
            d_wait = norm_scale_after_codes(beats, sizes.lanes, ratio)
        elif step.op == Op.MATMUL:
            # after a MATMUL of the same codes the product was started by it (no START here):
            # ``lead`` cycles ago, once the array was free
            chained = previous is not None and previous.op == Op.MATMUL
            start = 0 if chained else START
            n, k = shapes[step.name]
            busy, end, heads_state = output_path(n, k, step.route, d_wait - FETCH - start, sizes,
                                                 cfg.dim_per_head, drain, units, lead, heads_state, narrow)
            # (the head quantizer's state in the next instruction's cycles)
            heads_state = (*(t - end - FETCH for t in heads_state[:5]), heads_state[5])
            # the array busy (the engine counts it first): this product's part in this
            # instruction, and the next one's from its start here to the end (or its last result)
            matmul = max(0, busy)
            following = steps[i + 1]
            if following.op == Op.MATMUL:
                next_busy = _produced(*shapes[following.name], sizes.rows, sizes.simd, drain)[-1]
                lead = end + FETCH - (busy + 1)
                matmul += max(0, min(end, busy + 1 + next_busy) - (busy + 1))
            else:
                lead = 0
            add(total, phases(control=FETCH + start, matmul=matmul, vector=max(0, end - matmul)))
            d_wait = 0
        previous = step
    return total


def head_cycles(cfg, sizes: EngineSizes, greedy: bool = GREEDY, ratio: int = 1) -> dict:
    """The final norm, LM head and sample of a generated token."""
    return phases(control=2 * FETCH, head=lm_head_cycles(cfg, sizes, greedy, ratio))


def engine_units(params: dict) -> int:
    """The Dequantizer's elements a cycle of an engine of ``params`` (Engine's keywords)."""
    return params.get("dequantizer_units") or narrow_lanes(params["lanes"], params.get("output_lanes"))


def token_cycles(cfg, params: dict, position: int, *, decode: bool = True,
                 greedy: bool = GREEDY) -> dict:
    """Predicted cycles by phase (and ``cycles``) of one token at ``position``: prefill (a prompt
    token, the layers only) or decode (the layers and an LM head and sample)."""
    sizes, ratio, units = EngineSizes.of(params), params.get("norm_ratio", 1), engine_units(params)
    total = body_cycles(cfg, sizes, position, ratio, units, params.get("output_lanes"))
    if decode:
        add(total, head_cycles(cfg, sizes, greedy, ratio))
    total["cycles"] = sum(total[p.name.lower()] for p in Phase)
    return total


def mean_cycles(cfg, params: dict, positions, *, decode: bool = True) -> dict:
    """The mean of :func:`token_cycles` over ``positions`` (only attention depends on the
    position: the rest is computed once)."""
    positions = list(positions)
    sizes, ratio, units = EngineSizes.of(params), params.get("norm_ratio", 1), engine_units(params)
    total = token_cycles(cfg, params, 0, decode=decode)
    attention = (sum(attention_cycles(cfg, sizes, p + 1, ratio, units) for p in positions) / len(positions)
                 * cfg.num_hidden_layers)
    shift = attention - total["attention"]
    return {**total, "attention": attention, "cycles": total["cycles"] + shift}


def weight_bound(cfg, params: dict) -> float:
    """The weight-read bound: one position's ternary weights ÷ ``rows · simd`` a cycle."""
    return cfg.ternary_weights / (params["rows"] * params["simd"])


def roofline(cfg, params: dict, position: int) -> dict:
    """The roofline bound of a token at ``position``: for each resource the cycles its work takes
    at the engine's rate, and ``bound``, the largest (an engine whose resources all worked at once
    could be no faster):

    - ``weights``: one position's ternary weights ÷ ``rows · simd`` (:func:`weight_bound`);
    - ``attention``: the attention MACs (each query head's scores and weighted values over the
      ``position + 1`` cached positions, ``2 · (position + 1) · head_dim`` a head a layer) ÷ the
      attention unit's ``2 · attention_lanes`` multipliers (a score and a value product a lane);
    - ``kv``: the KV cache's codes, each kv head's keys and values read once a layer (the query
      heads that share one reading it together) ÷ its two ports of ``attention_lanes`` codes;
    - ``lm_head``: the LM head's ``vocab · hidden`` MACs ÷ ``head_lanes``."""
    length, d, layers = position + 1, cfg.dim_per_head, cfg.num_hidden_layers
    lanes = params["attention_lanes"]
    parts = {
        "weights": weight_bound(cfg, params),
        "attention": 2 * layers * cfg.num_attention_heads * length * d / (2 * lanes),
        "kv": 2 * layers * cfg.num_key_value_heads * length * d / (2 * lanes),
        "lm_head": cfg.vocab_size * cfg.hidden_size / params["head_lanes"],
    }
    return {**parts, "bound": max(parts.values())}
