"""The whole BitNet b1.58 engine: every step of ``model.integer.IntegerModel`` on chip, its
weights and tables in on-chip memory, stepped by a sequencer through :func:`hw.sequencer.program`.

Commands come in on ``command``; generated tokens leave on ``o``:

- ``TOKEN`` (``token``): one prompt token through every layer at the current position (its keys
  and values join the KV cache); the position advances.
- ``GENERATE`` (``count``, ``greedy``, ``coef``, ``top_k``, ``seed``): the generator is seeded
  (``model.numerics.xorshift_seed``: the host passes the state), then ``count`` tokens: the LM head
  of the last position, a sample, the token out on ``o`` (``last`` on the final one) and, unless
  it was the last, the token through every layer. ``coef`` is the scale ``log2(e)/T``
  (``scale_from_float``); ``greedy`` ignores it.
- ``RESET``: the position goes back to 0 (the KV cache is overwritten from there).

``stop`` (a pulse) during a generation makes the next token out the last one (``last`` set).

A command is taken only while ``busy`` is low. Generation stops early when the context is full
(``full`` goes high). ``error`` is sticky: a block flagged an out-of-contract value (an ``invalid``
scale, a sampler ``invalid``).

The datapath (ports and cycles of each block in docs/gateware.md)::

    token ─ TokenTable ─► H ─► RmsQuantizer ─► TernaryLinear ─┬─ Rope ─ HeadQuantizer ─► Q buffer, KV cache
             (embedding)   ▲   ▲  ▲   │ codes                 ├─ HeadQuantizer ─► KV cache (v)
                           │   │  │   └─► TokenTable (LM head) ─► Sampler ─► o
                           │   │  │                           ├─ gate buffer ─┐
                           │   │  └── GatedActivation ◄───────┴─ (up) ────────┘
                           │   └── Dequantizer ◄─ AttentionHead ◄─ Q buffer, KV cache (heads in turn)
                           └──── Dequantizer (+ H) ◄── (o_proj, down_proj)

    (one Dequantizer, shown twice: it also makes the embedding row)

Matmul results queue in a FIFO (``RESULT_FIFO_DEPTH``), so a product starts as soon as its
activation codes are in, while the norm's scale ``D`` is still being made and while the output
path (RoPE, per-head quantization, the residual add) drains; the sequencer waits for the output
path before the next instruction.

With ``flash_offset`` the weights are not built in: the engine first fills its weight RAM from SPI
flash (``flash`` port, :class:`~hw.flash_loader.FlashLoader`) and is ``busy`` until then.

Status (one ``status`` member, :func:`status_signature`, that a host interface joins with
``connect``): ``position``, ``tokens`` (generated since the last GENERATE), ``cycles`` (clock cycles
while busy) and the same split by :class:`Phase` (``phase_cycles``: the array busy, else what the
sequencer is waiting on), for ``tritium sim generate`` and ``tritium bench engine``.

With ``taps=True`` the ``tap`` port shows every value the engine stores or streams between blocks
(one event a cycle, no backpressure), tagged with the instruction (``pc``) and a :class:`Tap` kind:
the whole-engine tests compare them with ``model.integer``'s trace, so a mismatch names the block
and the element.
"""

import dataclasses
import enum
import math

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.integer import IntegerModel
from model.numerics import (ACT_BITS, GAIN_BITS, RES_BITS, RES_UNIT, SCALE_EXP_BITS, XORSHIFT_BITS,
                            sampling_coefficient, scale_from_int, xorshift_seed)

from .arith import divisors, read_pass
from .attention import AttentionHead
from .dequantizer import Dequantizer
from .gated_activation import GatedActivation
from .head_quantizer import HeadQuantizer
from .kv_cache import KvCache
from .flash_loader import FlashLoader, SpiSignature, flash_image
from .linear import TernaryLinear
from .multiplier import check_primitive
from .packing import Packer
from .quantizer import MAX_LANES
from .rms_quantizer import RATIOS, RmsQuantizer
from .rope import Rope
from .sampler import Sampler
from .scale_unit import ScaleOp, SharedScaleUnit, scale_layout
from .skid_buffer import SkidBuffer
from .sequencer import MATRICES, NORMS, Op, Route, Sink, Source, head_start, program
from .token_table import TokenTable

TAP_BITS = 48            # wide enough for every tapped value (logits: logit_width <= 48)
COUNT_BITS = 16          # GENERATE's count
CYCLE_BITS = 40
RESULT_FIFO_DEPTH = 128  # matmul results queued ahead of the output path (> a norm's D latency)
RESULT_STAGE_DEPTH = 2   # of them staged in registers after the queue (its read enable from a level)
# The blocks the output path feeds compute NARROW_LANES lanes a cycle unless the engine's
# ``output_lanes`` says otherwise: the array's drain, RoPE, the head quantizer (with its two banks
# a head's codes leave while the next head arrives) and the Dequantizer (the residual's sums; it
# also takes the embedding row and the attention heads' outputs, a beat in lanes / 2 cycles).
# More shortens a vector's tail, at a multiplier and ~300–400 LUT4 a lane.
NARROW_LANES = 2


def narrow_lanes(lanes: int, output_lanes: int | None = None) -> int:
    """Lanes a cycle of the head quantizer and the Dequantizer at ``lanes`` vector lanes:
    ``output_lanes`` where given (the Engine's parameter, which divides ``lanes``), else
    :data:`NARROW_LANES` or fewer, dividing ``lanes`` (so also the head dimension and the
    attention lanes)."""
    return output_lanes or math.gcd(lanes, NARROW_LANES)


def result_drain(rows: int, lanes: int, outputs, head_dim: int, output_lanes: int | None = None) -> int:
    """Matmul results a cycle out of the array (its ``drain``) and through the result FIFO, for
    matrices of ``outputs`` rows each: :func:`narrow_lanes`, the rate at which the Dequantizer adds
    the residual's sums (the gate buffer and the gated activation take as many), where it divides
    ``rows``, every matrix's rows and half the head dimension (so no transfer is part padding, and
    RoPE takes the heads as many a cycle); else 1."""
    drain = narrow_lanes(lanes, output_lanes)
    fits = rows % drain == 0 and all(n % drain == 0 for n in outputs) and (head_dim // 2) % drain == 0
    return drain if fits else 1


class Command(enum.IntEnum):
    TOKEN = 0
    GENERATE = 1
    RESET = 2


class Tap(enum.IntEnum):
    H = 0            # a residual-buffer write (embedding, o_proj / down_proj added in)
    CODES = 1        # RmsQuantizer codes
    SCALE = 2        # RmsQuantizer's dequant scale D
    HEAD_CODES = 3   # HeadQuantizer codes (q, k or v)
    HEAD_SCALE = 4   # HeadQuantizer's head scale
    INPUT = 5        # a norm's input from the attention heads or the gated activation
    LOGIT = 6        # an LM-head logit


class Phase(enum.IntEnum):
    """What a busy cycle is spent on, the first that applies: the critical path of a token."""
    MATMUL = 0       # the TernaryLinear is busy (a product under way)
    ATTENTION = 1    # the array idle: the heads attended (the attn_sub_norm NORM)
    VECTOR = 2       # the array idle: another NORM, EMBED, a matmul's output path draining
    HEAD = 3         # the array idle: the final norm, the LM head, the sampler
    CONTROL = 4      # the array idle: fetching instructions, scale products between them


def command_layout(config, k_max: int) -> data.StructLayout:
    """The ``command`` stream's payload (see the module docstring)."""
    return data.StructLayout({"op": 2, "token": range(config.vocab_size), "count": COUNT_BITS,
                              "greedy": 1, "coef": scale_layout(SCALE_EXP_BITS),
                              "top_k": range(k_max + 1), "seed": XORSHIFT_BITS})


def token_layout(config) -> data.StructLayout:
    """The ``o`` stream's payload: a generated token, ``last`` on a GENERATE's final one."""
    return data.StructLayout({"token": range(config.vocab_size), "last": 1})


# Shallow, wide buffers (memories by their path inside the Engine) that a board may put in LUT RAM
# rather than block RAM, which its weights and KV cache need: the ULX3S-85F's SoC at 8×32 with
# lanes 4/16/32 takes 199 block RAMs of its 208 with all of them in LUT RAM.
SHALLOW_BUFFERS = ("rms/buffer", "attention/z_buffer", "sampler/z_buffer", "gated/buffer")


def status_signature(config) -> wiring.Signature:
    """The engine's state as a host interface reads it (:class:`~hw.host_link.HostLink`), and the
    host's stop request: ``busy``, ``full`` (the context), ``error`` (sticky), ``position``,
    ``tokens`` (generated since the last GENERATE) and ``cycles`` (clock cycles while busy) out of
    the engine; ``stop`` (a pulse) into it."""
    return wiring.Signature({
        "stop": In(1), "busy": Out(1), "full": Out(1), "error": Out(1),
        "position": Out(range(config.max_position_embeddings + 1)),
        "tokens": Out(COUNT_BITS), "cycles": Out(CYCLE_BITS)})


def stop_request(m, stop, o):
    """When a generator acts on ``stop`` (a pulse: the next token out is the last): at once, or,
    while a token is on offer on the stream ``o`` and not taken, once it is taken (the token keeps
    its ``last``: a payload holds until taken)."""
    pending = Signal(name="stop_pending")
    wanted = stop | pending
    held = o.valid & ~o.ready
    m.d.sync += pending.eq(wanted & held)
    return wanted & ~held


@dataclasses.dataclass(frozen=True)
class EngineSizes:
    """How wide the engine is built: the array's ``rows × simd`` and the vector ``lanes``, the
    attention heads' and KV words' ``attention_lanes`` and the LM head's ``head_lanes`` — the
    :class:`Engine` parameters that size it (the boards, the explorer, the CLI, simulation and the
    benchmarks all state sizes as this); :meth:`as_dict` gives them as Engine's keyword arguments.
    Each is a positive integer (checked here); :meth:`problem` checks them against a model, as
    :class:`Engine` does."""
    rows: int
    simd: int
    lanes: int
    attention_lanes: int
    head_lanes: int

    def __post_init__(self):
        for name, value in self.as_dict().items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    def problem(self, config) -> str | None:
        """Why the engine cannot be built at these sizes for ``config``, with the sizes that would
        do (one line), or None: ``lanes`` divides ``simd``, ``simd`` the hidden and intermediate
        sizes, ``attention_lanes`` the head dimension and ``head_lanes`` the hidden size, both
        multiples of ``lanes``."""
        _, simd, lanes, att, head = dataclasses.astuple(self)
        if simd % lanes:
            return f"lanes must divide simd {simd}, not {lanes}; {divisors(simd)} would"
        for name in ("hidden_size", "intermediate_size"):
            size = getattr(config, name)
            if size % simd:
                return f"simd must divide {name} {size}, not {simd}; {divisors(size)} would"
        if config.dim_per_head % att or att % lanes:
            return (f"attention_lanes must divide head_dim {config.dim_per_head} and be a multiple "
                    f"of lanes {lanes}, not {att}; {divisors(config.dim_per_head, lanes)} would")
        if config.hidden_size % head or head % lanes:
            return (f"head_lanes must divide hidden_size {config.hidden_size} and be a multiple "
                    f"of lanes {lanes}, not {head}; {divisors(config.hidden_size, lanes)} would")
        return None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def of(cls, params: dict) -> "EngineSizes":
        """The sizes among ``params`` (Engine keyword arguments; others are ignored)."""
        return cls(**{name: params[name] for name in cls.names()})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def default(cls, config) -> "EngineSizes":
        """The sizes used when none are given: ``rows × simd`` = 8×16 for models of hidden size
        128 and up, 4×8 below (simd the largest power of two dividing the hidden and intermediate
        sizes, up to that), ``lanes`` the largest power of two up to 16 (8 below 128) dividing
        ``simd`` and ``head_dim``; the attention heads (and KV cache words) and the LM head as wide
        as a power of two up to 32 allows (a whole head of 32, a sixth of the ulx3s model's hidden
        vector)."""
        big = config.hidden_size >= 128
        simd = next(s for s in (16, 8, 4, 2, 1) if s <= (16 if big else 8)
                    and config.hidden_size % s == 0 and config.intermediate_size % s == 0)
        lanes = next(n for n in (16 if big else 8, 8, 4, 2, 1)
                     if simd % n == 0 and config.dim_per_head % n == 0)
        attention_lanes = next(n for n in (32, 16, 8, 4, 2, 1)
                               if config.dim_per_head % n == 0 and n % lanes == 0)
        head_lanes = next(n for n in (32, 16, 8, 4, 2, 1)
                          if config.hidden_size % n == 0 and n % lanes == 0)
        return cls(8 if big else 4, simd, lanes, attention_lanes, head_lanes)


class Engine(wiring.Component):
    """The whole BitNet engine: commands in, generated tokens out, every step of
    ``model.integer.IntegerModel`` on chip, stepped by the sequencer's program; ``status`` reports
    its state (cycles per token: ``fpga.perf.cycle_model``).

    Parameters
    ----------
    model : IntegerModel
        The integer model whose weights, gains and tables are baked in.
    rows, simd : int
        The TernaryArray's output channels and K-lanes per cycle (``simd`` divides hidden and
        intermediate sizes; a weight word of ``2·rows·simd`` bits a cycle).
    lanes : int
        Elements per beat of the vector units and buffers (divides ``simd`` and ``head_dim``).
    k_max : int
        The sampler's largest top-k.
    attention_lanes, head_lanes : int
        Elements per beat of the attention heads (and KV-cache words) and of the LM head
        (multiples of ``lanes``; default ``lanes``).
    norm_ratio : int
        Vector beats a word of the RmsQuantizer's buffer (1, 2 or 4): a norm's two passes and its
        codes run ``lanes · norm_ratio`` elements a cycle (:attr:`norm_lanes`, which must divide
        ``simd``, ``head_lanes`` and the hidden and intermediate sizes), at three multipliers an
        element.
    output_lanes : int or None
        Matmul results a cycle through the output path: out of the array (:func:`result_drain`),
        through RoPE and the head quantizer, and (unless ``dequantizer_units``) the Dequantizer's
        elements a cycle; divides ``lanes`` (default :func:`narrow_lanes`: 2 where it divides
        ``lanes``). The array's tiles leave in ``rows / output_lanes`` cycles.
    dequantizer_units : int or None
        Elements a cycle of the shared Dequantizer (the embedding row, an attention head's output,
        the residual add), a multiplier each; divides ``lanes`` (default: the output lanes).
    flash_offset : int or None
        Where the weights are: ``None`` builds them into the design (ECP5, Gowin block RAM);
        a byte address makes them a RAM (iCE40 SPRAM) filled after reset from SPI flash at that
        offset (:meth:`flash_image`) through the ``flash`` port; commands wait for it.
    spram : bool
        With ``flash_offset``: that RAM is the iCE40 UP5K's SPRAM (instantiated primitives).
    multiplier : str or None
        The attention head's key and value products on that primitive (``"MULT18X18D"``: ECP5's
        multiplier blocks with their operand and product registers, :mod:`hw.multiplier`), or None
        for inferred multiplies between fabric registers.
    taps : bool
        Build the ``tap`` debug port.
    """

    def __init__(self, model: IntegerModel, *, rows: int = 4, simd: int = 8, lanes: int = 4,
                 attention_lanes: int | None = None, head_lanes: int | None = None,
                 norm_ratio: int = 1, output_lanes: int | None = None,
                 dequantizer_units: int | None = None, k_max: int = 8,
                 flash_offset: int | None = None, spram: bool = False, multiplier: str | None = None,
                 taps: bool = False):
        attention_lanes = attention_lanes or lanes
        head_lanes = head_lanes or lanes
        cfg = model.config
        problem = EngineSizes(rows, simd, lanes, attention_lanes, head_lanes).problem(cfg)
        if problem:
            raise ValueError(problem)
        sizes = {"simd": simd, "head_lanes": head_lanes, "hidden_size": cfg.hidden_size,
                 "intermediate_size": cfg.intermediate_size}
        fits = [r for r in RATIOS if lanes * r <= MAX_LANES
                and not any(size % (lanes * r) for size in sizes.values())]
        if norm_ratio not in fits:
            raise ValueError(f"norm_ratio must be one of {fits} at {lanes} lanes (lanes · norm_ratio "
                             f"divides {', '.join(f'{name} {size}' for name, size in sizes.items())}), "
                             f"not {norm_ratio!r}")
        if output_lanes is not None and (not isinstance(output_lanes, int) or output_lanes < 1
                                         or lanes % output_lanes):
            raise ValueError(f"output_lanes must divide lanes {lanes}, not {output_lanes!r}; "
                             f"{divisors(lanes)} would")
        narrow = narrow_lanes(lanes, output_lanes)
        units = narrow if dequantizer_units is None else dequantizer_units
        if not isinstance(units, int) or units < 1 or lanes % units:
            raise ValueError(f"dequantizer_units must divide lanes {lanes}, not {units!r}; "
                             f"{divisors(lanes)} would")
        check_primitive("multiplier", multiplier)
        if not isinstance(k_max, int) or k_max < 1:
            raise ValueError(f"k_max must be a positive integer, not {k_max!r}")
        self._model, self._config = model, cfg
        self._rows, self._simd, self._lanes, self._k_max = rows, simd, lanes, k_max
        self._attention_lanes, self._head_lanes = attention_lanes, head_lanes
        self._norm_ratio, self._dequantizer_units, self._output_lanes = norm_ratio, units, narrow
        self._program = program(cfg)
        self._taps = taps
        self._multiplier = multiplier
        matrices = [getattr(layer, name).codes for layer in model.layers for name in MATRICES]
        drain = result_drain(rows, lanes, [len(m) for m in matrices], cfg.dim_per_head, narrow)
        self._linear = TernaryLinear(matrices, rows=rows, simd=simd, loaded=flash_offset is not None,
                                     spram=spram, drain=drain)
        self._loader = None if flash_offset is None else FlashLoader(
            offset=flash_offset, words=self._linear.rom_words, word_bits=self._linear.rom_word_bits)
        # One table for both uses when they are tied (its ROM words as wide as the LM head's lanes,
        # the embedding row in parts of the vector lanes); else one for each.
        if model.lm_head is model.embed:
            self._table = self._lm_table = TokenTable(model.embed, lanes=head_lanes, embedding_lanes=lanes)
        else:
            self._table = TokenTable(model.embed, lanes=lanes, lm_head=False)
            self._lm_table = TokenTable(model.lm_head, lanes=head_lanes, embedding=False)
        members = {
            "command": In(stream.Signature(command_layout(cfg, k_max))),
            "o": Out(stream.Signature(token_layout(cfg))),
            "status": Out(status_signature(cfg)),
            "phase_cycles": Out(data.ArrayLayout(CYCLE_BITS, len(Phase))),
        }
        if flash_offset is not None:
            members["flash"] = Out(SpiSignature)
        if taps:
            members["tap"] = Out(stream.Signature(data.StructLayout({
                "pc": range(len(self._program)), "kind": 3,
                "data": data.ArrayLayout(signed(TAP_BITS), max(lanes * norm_ratio, attention_lanes)),
                "mant": 16, "exp": signed(SCALE_EXP_BITS)})))
        super().__init__(members)

    program = property(lambda self: list(self._program))
    rows = property(lambda self: self._rows)
    simd = property(lambda self: self._simd)
    lanes = property(lambda self: self._lanes)
    k_max = property(lambda self: self._k_max)
    attention_lanes = property(lambda self: self._attention_lanes)
    head_lanes = property(lambda self: self._head_lanes)
    norm_ratio = property(lambda self: self._norm_ratio)
    norm_lanes = property(lambda self: self._lanes * self._norm_ratio)   # a norm's codes a beat
    dequantizer_units = property(lambda self: self._dequantizer_units)
    output_lanes = property(lambda self: self._output_lanes)
    linear = property(lambda self: self._linear)

    def flash_image(self) -> bytes:
        """The ternary weights as the flash loader reads them (to be written at ``flash_offset``)."""
        return flash_image(self._linear.weight_words(), self._linear.rom_word_bits)

    def elaborate(self, platform):
        m = Module()
        model, cfg, lanes, att_lanes = self._model, self._config, self._lanes, self._attention_lanes
        hidden, ffn, d = cfg.hidden_size, cfg.intermediate_size, cfg.dim_per_head
        heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        context = cfg.max_position_embeddings
        steps = self._program
        scale = scale_layout(SCALE_EXP_BITS)

        def scale_const(value):
            return scale.const({"mant": int(value[0]), "exp": int(value[1])})

        # -- blocks --------------------------------------------------------------------------
        m.submodules.linear = linear = self._linear
        weights_ready = 1
        if self._loader is not None:
            m.submodules.loader = loader = self._loader
            wiring.connect(m, wiring.flipped(self.flash), loader.spi)
            m.d.comb += [linear.load.valid.eq(loader.o.valid), linear.load.payload.eq(loader.o.payload),
                         loader.o.ready.eq(linear.load.ready)]
            weights_ready = linear.ready
        acc_width = linear.acc_width
        m.submodules.table = table = self._table
        if self._lm_table is not table:
            m.submodules.lm_table = self._lm_table
        lm_table = self._lm_table
        m.submodules.gated = gated = GatedActivation(width=acc_width, lanes=lanes, max_length=ffn,
                                                     kind=cfg.hidden_act)
        norm_lanes = self.norm_lanes
        m.submodules.rms = rms = RmsQuantizer(width=max(RES_BITS, gated.out_bits), lanes=lanes,
                                              ratio=self._norm_ratio, max_length=max(hidden, ffn),
                                              shared_scale=True)
        drain = linear.drain            # results a transfer out of the array (result_drain)
        # The heads through RoPE as they leave the array, ``drain`` a cycle, into the head
        # quantizer at the output lanes (its two AbsmaxQuantizers take the heads in turn, so it keeps
        # up); its codes are packed to the attention lanes of the query buffer and the KV cache.
        m.submodules.rope = rope = Rope(width=acc_width, head_dim=d, positions=context,
                                        theta=cfg.rope_theta, lanes=drain)
        qkv_lanes = self._output_lanes
        m.submodules.head_quantizer = headq = HeadQuantizer(width=acc_width + 1, lanes=qkv_lanes,
                                                            head_dim=d, quantizers=2)
        m.submodules.kv_cache = kv = KvCache(layers=cfg.num_hidden_layers, kv_heads=kv_heads,
                                             head_dim=d, positions=context, lanes=att_lanes)
        m.submodules.attention = attention = AttentionHead(head_dim=d, lanes=att_lanes, out_lanes=lanes,
                                                           max_positions=context, shared_scale=True,
                                                           multiplier=self._multiplier)
        # One Dequantizer for the three uses, which never overlap: the embedding row (EMBED), an
        # attention head's output (the attn_sub_norm NORM), the o_proj / down_proj sums added into
        # H (their MATMULs). Each beat carries its scale.
        m.submodules.dequantizer = deq = Dequantizer(width=max(acc_width, attention.out_bits), lanes=lanes,
                                                     units=self._dequantizer_units)
        m.submodules.sampler = sampler = Sampler(logit_width=lm_table.logit_width,
                                                 vocab_max=cfg.vocab_size, k_max=self._k_max)
        # One ScaleUnit for the engine's own scale products and the norm's and attention's scale programs.
        # The engine first (its products hold up the sequencer), then the blocks.
        clients = {"rms": rms, "attention": attention}
        m.submodules.scale_unit = shared_scale = SharedScaleUnit(
            {"engine": 1, **{name: len(block.scale_unit.i.payload.n) for name, block in clients.items()}})
        for name, block in clients.items():
            wiring.connect(m, block.scale_unit, getattr(shared_scale, name))
        scale_unit = shared_scale.engine     # the engine's products: MUL only
        m.submodules.head_packer = head_packer = Packer(signed(acc_width + 1), drain, qkv_lanes // drain)
        m.submodules.head_code_packer = head_code_packer = Packer(signed(ACT_BITS), qkv_lanes,
                                                                  att_lanes // qkv_lanes)
        head_codes = head_code_packer.o
        m.submodules.vector_packer = vector_packer = Packer(signed(acc_width + 1), drain, lanes // drain)
        m.submodules.code_packer = code_packer = Packer(signed(ACT_BITS), norm_lanes,
                                                        self._simd // norm_lanes)
        m.submodules.lm_packer = lm_packer = Packer(signed(ACT_BITS), norm_lanes,
                                                    self._head_lanes // norm_lanes)
        for port in ("keys", "values", "key_scales", "value_scales"):
            wiring.connect(m, getattr(attention, port), getattr(kv, port))
        # Skid buffers at the boundaries where a ready/valid chain would otherwise run through
        # several blocks in one cycle (and where a block-RAM read would feed a block's logic).
        def skid(name, shape):
            m.submodules[name] = buffer = SkidBuffer(shape)
            return buffer
        codes_skid = skid("codes_skid", code_packer.o.payload.shape())
        lm_codes_skid = skid("lm_codes_skid", lm_packer.o.payload.shape())
        rms_in = skid("rms_in", rms.i.payload.shape())
        headq_in = skid("headq_in", headq.i.payload.shape())
        deq_in = skid("deq_in", deq.i.payload.shape())
        deq_out = skid("deq_out", deq.o.payload.shape())    # to H and the norm: the sequencer's choice
        wiring.connect(m, deq.o, deq_out.i)
        gated_in = skid("gated_in", gated.i.payload.shape())
        # the norm sources' outputs, so their pipelines' stall is not the engine's source choice
        attention_out = skid("attention_out", attention.o.payload.shape())
        gated_out = skid("gated_out", gated.o.payload.shape())
        rope_out = skid("rope_out", rope.o.payload.shape())   # q and k, to the head quantizer
        headq_out = skid("headq_out", headq.o.payload.shape())   # the head codes, to their packer
        rms_out = skid("rms_out", rms.o.payload.shape())     # the norm's codes, to their sinks
        # (the other four are fed below, from the output path and the norm sources)
        for source_port, buffer in ((code_packer.o, codes_skid), (lm_packer.o, lm_codes_skid),
                                    (attention.o, attention_out),
                                    (gated.o, gated_out), (rms.o, rms_out), (rope.o, rope_out),
                                    (headq.o, headq_out)):
            wiring.connect(m, source_port, buffer.i)
        for buffer, sink_port in ((codes_skid, linear.x), (lm_codes_skid, lm_table.x),
                                  (rms_in, rms.i), (headq_in, headq.i),
                                  (gated_in, gated.i), (headq_out, head_code_packer.i)):
            wiring.connect(m, buffer.o, sink_port)
        # the LM head's logits leave through its own skid buffer
        wiring.connect(m, lm_table.logits, sampler.i)

        # -- buffers -------------------------------------------------------------------------
        def buffer(name, shape, depth, init=()):
            m.submodules[name] = mem = memory.Memory(shape=shape, depth=depth, init=list(init))
            return mem

        h_buf = buffer("h_buffer", data.ArrayLayout(signed(RES_BITS), lanes), hidden // lanes)
        gate_buf = buffer("gate_buffer", data.ArrayLayout(signed(acc_width), lanes), ffn // lanes)
        q_buf = buffer("q_buffer", data.ArrayLayout(signed(ACT_BITS), att_lanes), heads * d // att_lanes)
        q_scales = buffer("q_scales", scale, heads)
        gains = [getattr(layer, name) for layer in model.layers for name in NORMS] + [model.norm]
        gain_bases = np.cumsum([0] + [len(g.values) // norm_lanes for g in gains]).tolist()
        gain_words = np.concatenate([g.values for g in gains]).reshape(-1, norm_lanes).tolist()
        gain_mem = buffer("gains", data.ArrayLayout(signed(GAIN_BITS), norm_lanes), len(gain_words),
                          gain_words)
        h_read, h_write = h_buf.read_port(), h_buf.write_port()
        gate_read, gate_write = gate_buf.read_port(), gate_buf.write_port()
        q_read, q_write = q_buf.read_port(), q_buf.write_port()
        q_scale_read, q_scale_write = q_scales.read_port(), q_scales.write_port()
        gain_read = gain_mem.read_port()

        # -- sequencer state -----------------------------------------------------------------
        pc = Signal(range(len(steps)))
        position = Signal(range(context + 1))
        token = Signal(range(cfg.vocab_size))
        remaining = Signal(COUNT_BITS)
        generating = Signal()
        greedy, top_k, temperature = Signal(), Signal(range(self._k_max + 1)), Signal(scale)
        d_scale, acc_scale, gate_scale, gated_scale = (Signal(scale, name=n) for n in (
            "d_scale", "acc_scale", "gate_scale", "gated_scale"))
        logit_scale, sampler_coef = Signal(scale), Signal(scale)
        error = Signal()
        m.d.comb += [self.status.position.eq(position), self.status.error.eq(error),
                     sampler.greedy.eq(greedy), sampler.top_k.eq(top_k),
                     sampler.coef.eq(sampler_coef), sampler.seed.eq(self.command.payload.seed)]

        # The current instruction, decoded from the program ROM into registers (the DECODE state
        # waits for them after each fetch): the fields fan out across the engine.
        op, layer = Signal(range(len(Op))), Signal(range(max(cfg.num_hidden_layers, 1)))
        index = Signal(range(len(linear.shapes) + len(gains)))
        source, sink, route = (Signal(range(len(e)), name=n) for e, n in (
            (Source, "source"), (Sink, "sink"), (Route, "route")))
        # A residual add followed by a NORM of H forwards its sums into the RmsQuantizer as they
        # are written (``forward``, that norm's ``forward_index``): the NORM then has no read pass.
        forward, forward_index = Signal(), Signal(range(len(gains)))
        # A MATMUL followed by another of the same codes (q, k, v; gate, up) starts the next
        # product (``chain_index``) once the array is free, its results queued behind this one's
        # while this one's output path finishes (``prestarted``: the next MATMUL has no START).
        chain, chain_index, prestarted = Signal(), Signal(range(len(linear.shapes))), Signal()
        # EMBED and NORM decoded into registers of their own: they steer the Dequantizer's input
        # and H's writes, where ``op`` through a comparison was the ULX3S-85F's slowest path
        # (op's register to the Dequantizer's offset adder, 13 of 17 ns routing)
        op_embed, op_norm = Signal(init=op.init == Op.EMBED), Signal(init=op.init == Op.NORM)
        # and the route likewise, one register a route (and the heads', and RoPE's): they steer the
        # output path, where ``route`` through comparisons to the result FIFO's read enable was the
        # slowest path (56.6 MHz at 32 attention lanes)
        routes = {r: Signal(name=f"route_{r.name.lower()}", init=route.init == r) for r in Route}
        route_heads, route_rope = Signal(init=route.init <= Route.V), Signal(init=route.init <= Route.K)
        with m.Switch(pc):
            for i, step in enumerate(steps):
                following = steps[i + 1] if i + 1 < len(steps) else None
                forwards = (step.op == Op.MATMUL and step.route == Route.RESIDUAL
                            and following is not None and following.op == Op.NORM
                            and following.source == Source.H)
                chains = step.op == Op.MATMUL and following is not None and following.op == Op.MATMUL
                with m.Case(i):
                    m.d.sync += [op.eq(step.op), op_embed.eq(step.op == Op.EMBED),
                                 op_norm.eq(step.op == Op.NORM), layer.eq(step.layer), index.eq(step.index),
                                 source.eq(step.source), sink.eq(step.sink), route.eq(step.route),
                                 forward.eq(forwards), forward_index.eq(following.index if forwards else 0),
                                 chain.eq(chains), chain_index.eq(following.index if chains else 0),
                                 route_heads.eq(step.route <= Route.V), route_rope.eq(step.route <= Route.K)]
                    m.d.sync += [flag.eq(step.route == r) for r, flag in routes.items()]

        # Per-matrix and per-norm constants.
        gamma = Signal(scale)
        with m.Switch(index):
            for i, (layer_model, name) in enumerate((lyr, n) for lyr in model.layers for n in MATRICES):
                with m.Case(i):
                    m.d.comb += gamma.eq(scale_const(getattr(layer_model, name).gamma))
        # The RmsQuantizer's constants are those of the latest NORM: its D is made after the codes,
        # while the next instruction runs.
        norm_index, norm_gated = Signal(range(len(gains))), Signal()
        gain_base = Signal(range(len(gain_words) + 1))
        with m.Switch(norm_index):
            for i, gain in enumerate(gains):
                with m.Case(i):
                    m.d.comb += [gain_base.eq(gain_bases[i]),
                                 rms.inv_len.eq(scale_const(gain.inv_len)),
                                 rms.gain_exp.eq(gain.exp)]
        m.d.comb += [gain_read.addr.eq(gain_base + rms.gain.addr), gain_read.en.eq(rms.gain.en),
                     rms.gain.data.eq(gain_read.data), rms.eps.eq(scale_const(model.eps)),
                     rms.x_scale.eq(Mux(norm_gated, gated_scale, scale_const(RES_UNIT)))]

        def take_scale(register, payload):
            """Store a block's result scale; an ``invalid`` one sets ``error``."""
            m.d.sync += [register.mant.eq(payload.mant), register.exp.eq(payload.exp)]
            with m.If(payload.invalid):
                m.d.sync += error.eq(1)

        # -- one scale product at a time on the ScaleUnit -------------------------------------
        # Registered before it is offered (as a ScaleProgram's commands), so the shared unit's
        # choice and command register see registers, not the sequencer's state decoding.
        product = Signal(data.StructLayout({"a": scale, "b": scale}))
        offered = Signal()
        m.d.comb += [scale_unit.i.valid.eq(offered), scale_unit.i.payload.op.eq(ScaleOp.MUL),
                     scale_unit.i.payload.a.eq(product.a), scale_unit.i.payload.b.eq(product.b)]
        with m.If(scale_unit.i.valid & scale_unit.i.ready):
            m.d.sync += offered.eq(0)

        def offer(a, b):
            """Statements (sync) that offer a·b to the ScaleUnit from the next cycle."""
            return [product.a.eq(a), product.b.eq(b), offered.eq(1)]

        def scale_product(state, a, b, result, next_state):
            """States ``state`` (a·b registered), ``state + "_OFFER"`` (offered) and
            ``state + "_WAIT"`` (stored in ``result``)."""
            with m.State(state):
                m.d.sync += offer(a, b)
                m.next = state + "_OFFER"
            with m.State(state + "_OFFER"):
                with m.If(scale_unit.i.ready):
                    m.next = state + "_WAIT"
            with m.State(state + "_WAIT"):
                m.d.comb += scale_unit.o.ready.eq(1)
                with m.If(scale_unit.o.valid):
                    take_scale(result, scale_unit.o.payload)
                    m.next = next_state

        # -- the matmul's output path -----------------------------------------------------------
        # The products queue in a FIFO, so the array runs on while the scale D·γ is made (the
        # norm's D comes after its codes) and while the output path is slower than the array.
        # Wired by hand, not by connect: the array's payload is a struct around the products, and
        # the read side is routed (through RoPE or not) and held while no matmul runs.
        m.submodules.queued_results = queued = fifo.SyncFIFOBuffered(width=drain * acc_width,
                                                                     depth=RESULT_FIFO_DEPTH)
        m.d.comb += [queued.w_data.eq(linear.o.payload.data.as_value()), queued.w_en.eq(linear.o.valid),
                     linear.o.ready.eq(queued.w_rdy)]
        in_matmul = Signal()
        # D·γ is made while the matmul runs; only the residual add needs it element by element
        # (the head quantizer and the gated activation need it for their scales, after a vector's
        # last beat, which waits for it)
        acc_issued, acc_valid = Signal(), Signal()
        draining = Signal()
        m.d.comb += draining.eq(in_matmul & (acc_valid | ~routes[Route.RESIDUAL]))
        # Words staged in registers (RESULT_STAGE_DEPTH) between the queue and the output path: the
        # queue's read enable then comes from registers (the stage's level), not from the ready of
        # RoPE or a packer, the 85F's slowest path at 62.5 MHz
        # (docs/benchmarks.md).
        m.submodules.results = results = fifo.SyncFIFO(width=drain * acc_width, depth=RESULT_STAGE_DEPTH)
        # Only this MATMUL's words move on (a prestarted product's queue behind them): those left
        # are counted down from the route's vector, set at FETCH.
        words_left = Signal(range(max(hidden, ffn, heads * d) // drain + 1))
        route_words = Mux(routes[Route.Q], heads * d, Mux(routes[Route.K] | routes[Route.V], kv_heads * d,
                                                          Mux(routes[Route.RESIDUAL], hidden, ffn))) // drain
        moving = Signal()
        m.d.comb += [moving.eq(draining & (words_left != 0)),
                     results.w_data.eq(queued.r_data), results.w_en.eq(queued.r_rdy & moving),
                     queued.r_en.eq(results.w_rdy & moving)]
        with m.If(queued.r_rdy & results.w_rdy & moving):
            m.d.sync += words_left.eq(words_left - 1)
        result_words = data.ArrayLayout(signed(acc_width), drain)(results.r_data)
        group = Mux(route_heads, d, Mux(routes[Route.RESIDUAL], hidden, ffn))
        element = Signal(range(max(hidden, ffn) + 1))
        element_last = Signal()          # the transfer into the packer ends the group, kept in a register
        # The heads (through RoPE for q and k) and the vectors (residual add, gate, up) a word of
        # ``drain`` a cycle, into the head packer (to the head quantizer) or the vectors' packer.
        out_valid, out_ready = Signal(), Signal()
        out_data = Signal(data.ArrayLayout(signed(acc_width + 1), drain))
        head_word_valid = results.r_rdy & draining & route_heads
        m.d.comb += [results.r_en.eq(draining & Mux(route_heads, Mux(route_rope, rope.i.ready, out_ready),
                                                    vector_packer.i.ready)),
                     rope.position.eq(position[:len(rope.position)]), rope.i.payload.eq(result_words)]
        with m.If(route_rope):
            m.d.comb += [rope.i.valid.eq(head_word_valid),
                         out_valid.eq(rope_out.o.valid), rope_out.o.ready.eq(out_ready),
                         out_data.eq(rope_out.o.payload.data)]
        with m.Else():
            m.d.comb += out_valid.eq(head_word_valid)
            m.d.comb += [out_data[j].eq(result_words[j]) for j in range(drain)]
        vector_valid = results.r_rdy & draining & ~route_heads
        m.d.comb += [head_packer.i.valid.eq(out_valid & route_heads), head_packer.i.payload.data.eq(out_data),
                     head_packer.i.payload.last.eq(element_last), out_ready.eq(head_packer.i.ready),
                     vector_packer.i.valid.eq(vector_valid), vector_packer.i.payload.last.eq(element_last)]
        m.d.comb += [vector_packer.i.payload.data[j].eq(result_words[j]) for j in range(drain)]
        with m.If((out_valid & out_ready & route_heads) | (vector_valid & vector_packer.i.ready)):
            next_element = Mux(element_last, 0, element + drain)
            m.d.sync += [element.eq(next_element), element_last.eq(next_element == group - drain)]
        head_packed, packed = head_packer.o, vector_packer.o

        # Q, K, V: per-head int8 codes and scales. The heads leave the head quantizer in order,
        # q's, k's, then v's: each is written where its own route (``sinks``, which moves on after
        # a route's last head) says, so a MATMUL of q or k ends once its heads are in the head
        # quantizer (``heads_in``) and the next one's heads follow them in while they leave; v's
        # waits for every head to be out (``pending``), as attention reads them next. Each route's
        # D·γ is kept for its heads' scales (``head_scales``). A head's scale is taken after its
        # last code, and the next head's codes after that, so both land at ``head``.
        head_routes = (Route.Q, Route.K, Route.V)
        sinks = {r: Signal(name=f"sink_{r.name.lower()}", init=r == Route.Q) for r in head_routes}
        head_scales = {r: Signal(scale, name=f"head_scale_{r.name.lower()}") for r in head_routes}
        head = Signal(range(heads + 1))
        codes_done = Signal()
        heads_in = Signal(range(heads + 1))              # this MATMUL's heads into the head quantizer
        pending = Signal(range(2 * heads + 1))           # heads in the head quantizer, scale not taken
        m.d.comb += [headq.acc_scale.eq(Mux(sinks[Route.Q], head_scales[Route.Q],
                                            Mux(sinks[Route.K], head_scales[Route.K], head_scales[Route.V]))),
                     headq_in.i.payload.last.eq(head_packed.payload.last),
                     kv.write_layer.eq(layer), kv.write_head.eq(head[:len(kv.write_head)]),
                     kv.write_position.eq(position[:len(kv.write_position)])]
        m.d.comb += [headq_in.i.payload.data[e].eq(head_packed.payload.data[e])
                     for e in range(qkv_lanes)]
        for r in head_routes:
            with m.If(in_matmul & routes[r] & acc_valid):
                m.d.sync += head_scales[r].eq(acc_scale)
        head_in = headq_in.i.valid & headq_in.i.ready & headq_in.i.payload.last
        with m.If(route_heads):
            head_hold = head_packed.payload.last & ~acc_valid
            m.d.comb += [headq_in.i.valid.eq(head_packed.valid & ~head_hold),
                         head_packed.ready.eq(headq_in.i.ready & ~head_hold)]
            with m.If(head_in):
                m.d.sync += heads_in.eq(heads_in + 1)
        m.d.comb += [head_codes.ready.eq(~codes_done), headq.scale.ready.eq(codes_done)]
        code_taken = head_codes.valid & head_codes.ready
        scale_taken = headq.scale.valid & headq.scale.ready
        m.d.sync += pending.eq(pending + head_in - scale_taken)
        head_beat = Signal(range(d // att_lanes + 1))
        with m.If(code_taken):
            m.d.sync += head_beat.eq(Mux(head_codes.payload.last, 0, head_beat + 1))
            with m.If(head_codes.payload.last):
                m.d.sync += codes_done.eq(1)
        with m.If(scale_taken):
            m.d.sync += codes_done.eq(0)
            with m.If(head == Mux(sinks[Route.Q], heads - 1, kv_heads - 1)):
                m.d.sync += [head.eq(0), sinks[Route.Q].eq(sinks[Route.V]), sinks[Route.K].eq(sinks[Route.Q]),
                             sinks[Route.V].eq(sinks[Route.K])]
            with m.Else():
                m.d.sync += head.eq(head + 1)
            with m.If(headq.scale.payload.invalid):
                m.d.sync += error.eq(1)
        m.d.comb += [q_write.addr.eq(head * (d // att_lanes) + head_beat),
                     q_write.data.eq(head_codes.payload.data),
                     q_scale_write.addr.eq(head), q_scale_write.data.mant.eq(headq.scale.payload.mant),
                     q_scale_write.data.exp.eq(headq.scale.payload.exp)]
        for r, codes_in, scale_in, codes_en, scale_en in (
                (Route.Q, None, None, q_write.en, q_scale_write.en),
                (Route.K, kv.k, kv.k_scale, None, None),
                (Route.V, kv.v, kv.v_scale, None, None)):
            here = sinks[r]
            if codes_in is not None:
                m.d.comb += [codes_in.valid.eq(code_taken & here),
                             codes_in.payload.data.eq(head_codes.payload.data),
                             codes_in.payload.last.eq(head_codes.payload.last),
                             scale_in.valid.eq(scale_taken & here),
                             scale_in.payload.eq(headq.scale.payload)]
            else:
                m.d.comb += [codes_en.eq(code_taken & here), scale_en.eq(scale_taken & here)]

        # GATE: packed accumulators into the gate buffer.
        gate_addr = Signal(range(ffn // lanes + 1))
        m.d.comb += gate_write.addr.eq(gate_addr)
        m.d.comb += [gate_write.data[e].eq(packed.payload.data[e]) for e in range(lanes)]
        with m.If(routes[Route.GATE]):
            m.d.comb += [packed.ready.eq(1), gate_write.en.eq(packed.valid)]
            with m.If(packed.valid):
                m.d.sync += gate_addr.eq(gate_addr + 1)

        # RESIDUAL and UP: each packed beat joins a buffer word (H, or the gate buffer) read in
        # the same cycle; the pair goes to the dequantizer (+ H) or the gated activation.
        join_valid, join_last = Signal(), Signal()
        join_data = Signal(data.ArrayLayout(signed(acc_width), lanes))
        join_addr = Signal(range(max(hidden, ffn) // lanes + 1))
        joins = routes[Route.RESIDUAL] | routes[Route.UP]
        up_hold = join_last & ~acc_valid
        join_ready = Mux(routes[Route.RESIDUAL], deq_in.i.ready, gated_in.i.ready & ~up_hold)
        join_advance = ~join_valid | join_ready
        m.d.comb += [deq_in.i.valid.eq(join_valid & routes[Route.RESIDUAL]),
                     deq_in.i.payload.addend.eq(h_read.data),
                     deq_in.i.payload.last.eq(join_last), deq_in.i.payload.scale.eq(acc_scale),
                     gated_in.i.valid.eq(join_valid & routes[Route.UP] & ~up_hold),
                     gated_in.i.payload.gate.eq(gate_read.data), gated_in.i.payload.up.eq(join_data),
                     gated_in.i.payload.last.eq(join_last),
                     gated.gate_scale.eq(gate_scale), gated.up_scale.eq(acc_scale),
                     gate_read.addr.eq(join_addr), gate_read.en.eq(join_advance)]
        m.d.comb += [deq_in.i.payload.data[e].eq(join_data[e]) for e in range(lanes)]
        with m.If(joins):
            m.d.comb += packed.ready.eq(join_advance)
            with m.If(join_advance):
                m.d.sync += [join_valid.eq(packed.valid), join_last.eq(packed.payload.last)]
                m.d.sync += [join_data[e].eq(packed.payload.data[e]) for e in range(lanes)]
                with m.If(packed.valid):
                    m.d.sync += join_addr.eq(join_addr + 1)
        joined = Signal(range(max(hidden, ffn) // lanes + 1))      # beats taken by the sink
        with m.If(join_valid & join_ready & joins):
            m.d.sync += joined.eq(joined + 1)

        # The Dequantizer's input: the embedding row (EMBED), the attention output (NORM: only the
        # attn_sub_norm's has one) or the residual's sums (MATMUL); its output into H, or into the
        # norm for the attention.
        # They reach it through a skid buffer of its own, so the Dequantizer's ready (its advance)
        # goes no further than that skid: through the source's choice into the attention output's
        # skid, whose registers span the die, it was the 85F's slowest path at 16×32 (49.3 MHz).
        to_norm = op_norm
        deq_feed = skid("deq_feed", deq.i.payload.shape())
        wiring.connect(m, deq_feed.o, deq.i)

        def dequantize(source):
            """``source`` (data, scale, last; no addend) into the Dequantizer, element by element
            (its values are narrower than the Dequantizer's)."""
            m.d.comb += [deq_feed.i.valid.eq(source.valid), source.ready.eq(deq_feed.i.ready),
                         deq_feed.i.payload.scale.eq(source.payload.scale),
                         deq_feed.i.payload.last.eq(source.payload.last)]
            m.d.comb += [deq_feed.i.payload.data[e].eq(source.payload.data[e]) for e in range(lanes)]

        with m.If(op_embed):
            dequantize(table.embedding)
        with m.Elif(to_norm):
            dequantize(attention_out.o)
        with m.Else():
            m.d.comb += [deq_feed.i.valid.eq(deq_in.o.valid), deq_in.o.ready.eq(deq_feed.i.ready),
                         deq_feed.i.payload.eq(deq_in.o.payload)]

        # H writes: the embedding row, or the residual's sums.
        h_addr = Signal(range(hidden // lanes + 1))
        h_source = Signal(data.ArrayLayout(signed(RES_BITS), lanes))
        h_valid = Signal()
        token_sent = Signal()       # EMBED: the table took the token
        m.d.comb += [h_source.eq(deq_out.o.payload.data), h_valid.eq(deq_out.o.valid & ~to_norm),
                     h_write.addr.eq(h_addr), h_write.data.eq(h_source), h_write.en.eq(h_valid)]
        with m.If(h_valid):
            m.d.sync += h_addr.eq(h_addr + 1)

        # -- norm sources: H (read pass), the attention heads, the gated activation -----------
        in_norm = Signal()
        m.d.comb += deq_out.o.ready.eq(~to_norm | (rms_in.i.ready & in_norm))
        read_addr = Signal(range(hidden // lanes + 1))
        read_valid, read_last, reading = Signal(), Signal(), Signal()
        read_advance = ~read_valid | rms_in.i.ready
        forwarding, forwarded = Signal(), Signal()      # H's sums into the norm; all of them
        h_last = h_addr == hidden // lanes - 1            # the vector's last H write
        m.d.comb += forwarding.eq(in_matmul & forward & acc_valid)
        with m.If(forwarding & h_valid & h_last):
            m.d.sync += forwarded.eq(1)
        with m.If(in_norm & (source == Source.H) & ~forwarded):
            read_pass(m, reading, read_addr, hidden // lanes, read_advance, (read_valid,))
        m.d.comb += [h_read.addr.eq(Mux(op_norm, read_addr, join_addr)),
                     h_read.en.eq(Mux(op_norm, read_advance, join_advance))]
        with m.If(read_advance):
            m.d.sync += [read_valid.eq(reading), read_last.eq(read_addr == hidden // lanes - 1)]

        # The heads in turn: the next head's query is offered while the previous one is summed
        # and output (AttentionHead takes it once its values are summed). Its scale and kv head
        # follow the head being scored; the outputs arrive in head order.
        words = d // att_lanes
        q_head = Signal(range(heads + 1))              # the next query word: head, word
        q_addr = Signal(range(words + 1))
        q_valid, q_word_head, q_word = Signal(), Signal(range(heads)), Signal(range(words))
        scoring_head = Signal(range(heads))            # the query in AttentionHead
        out_head = Signal(range(heads + 1))            # the head whose output is next
        attending = in_norm & (source == Source.ATTENTION) & (q_head < heads)
        # the query word (with its head, and whether it is the head's first) through a skid buffer
        q_skid = skid("q_skid", data.StructLayout({
            "data": attention.q.payload.shape(), "head": range(heads), "first": 1}))
        q_advance = ~q_valid | q_skid.i.ready
        m.d.comb += [q_read.addr.eq(q_head * words + q_addr), q_read.en.eq(q_advance),
                     q_skid.i.valid.eq(q_valid), q_skid.i.payload.data.eq(q_read.data),
                     q_skid.i.payload.head.eq(q_word_head), q_skid.i.payload.first.eq(q_word == 0),
                     attention.q.valid.eq(q_skid.o.valid), q_skid.o.ready.eq(attention.q.ready),
                     attention.q.payload.eq(q_skid.o.payload.data),
                     q_scale_read.addr.eq(scoring_head), q_scale_read.en.eq(1),
                     attention.q_scale.eq(q_scale_read.data),
                     attention.score_coef.eq(scale_const(model.score_coef)),
                     attention.length.eq(position + 1), kv.read_layer.eq(layer)]
        # the weights pass weighs the query scored before (AttentionHead.weights_start), the
        # values pass sums the one weighed before (values_start): each reads its own head
        weighing_head, summing_head = Signal(range(heads)), Signal(range(heads))
        with m.If(attention.weights_start):
            m.d.sync += weighing_head.eq(scoring_head)
        with m.If(attention.values_start):
            m.d.sync += summing_head.eq(weighing_head)
        for head_index, kv_head in ((scoring_head, kv.read_head), (weighing_head, kv.value_scales_head),
                                    (summing_head, kv.values_head)):
            with m.Switch(head_index):
                for h in range(heads):
                    with m.Case(h):
                        m.d.comb += kv_head.eq(h // (heads // kv_heads))
        with m.If(q_advance):
            m.d.sync += [q_valid.eq(attending), q_word_head.eq(q_head), q_word.eq(q_addr)]
            with m.If(attending):
                m.d.sync += q_addr.eq(Mux(q_addr == words - 1, 0, q_addr + 1))
                with m.If(q_addr == words - 1):
                    m.d.sync += q_head.eq(q_head + 1)
        with m.If(attention.q.valid & attention.q.ready & q_skid.o.payload.first):
            m.d.sync += scoring_head.eq(q_skid.o.payload.head)
        with m.If(deq_out.o.valid & deq_out.o.ready & deq_out.o.payload.last & to_norm):
            m.d.sync += out_head.eq(out_head + 1)
        with m.If(attention_out.o.valid & attention_out.o.ready & attention_out.o.payload.invalid):
            m.d.sync += error.eq(1)

        with m.Switch(source):
            with m.Case(Source.H):
                # (the RmsQuantizer is free once the norm's D is out, which a residual add waits
                # for: a forwarded beat is always taken)
                m.d.comb += [rms_in.i.valid.eq(Mux(forwarding, h_valid, read_valid)),
                             rms_in.i.payload.last.eq(Mux(forwarding, h_last, read_last))]
                m.d.comb += [rms_in.i.payload.data[e].eq(Mux(forwarding, h_source[e], h_read.data[e]))
                             for e in range(lanes)]
            with m.Case(Source.ATTENTION):
                # the attention output, lanes a beat; the last head's last beat ends the vector
                m.d.comb += [rms_in.i.valid.eq(deq_out.o.valid & in_norm),
                             rms_in.i.payload.last.eq(deq_out.o.payload.last & (out_head == heads - 1))]
                m.d.comb += [rms_in.i.payload.data[e].eq(deq_out.o.payload.data[e]) for e in range(lanes)]
            with m.Case(Source.GATED):
                m.d.comb += [rms_in.i.valid.eq(gated_out.o.valid & in_norm),
                             gated_out.o.ready.eq(rms_in.i.ready & in_norm),
                             rms_in.i.payload.last.eq(gated_out.o.payload.last)]
                m.d.comb += [rms_in.i.payload.data[e].eq(gated_out.o.payload.data[e]) for e in range(lanes)]
        m.d.comb += gated.scale.ready.eq(1)
        with m.If(gated.scale.valid):
            take_scale(gated_scale, gated.scale.payload)

        # -- norm sinks: the matmul's activation buffer, or the LM head (when sampling, its last
        # beat is held until the sampler's coefficient is made from D) -----------------------
        release = Signal()
        norm_codes_done, d_valid = Signal(), Signal()     # of the latest NORM
        first_norm = Signal(init=1)                         # no NORM since reset
        norm_pc = Signal(range(len(steps)))
        q_pc = Signal(range(len(steps)))                    # the latest q_proj's (the heads' taps)
        code_last = rms_out.o.payload.last
        to_lm = sink == Sink.LM_HEAD
        m.d.comb += [code_packer.i.payload.eq(rms_out.o.payload), lm_packer.i.payload.eq(rms_out.o.payload)]
        with m.If(to_lm):
            # greedy needs no coefficient: nothing is held back
            m.d.comb += [lm_packer.i.valid.eq(rms_out.o.valid & (~code_last | release | greedy)),
                         rms_out.o.ready.eq(lm_packer.i.ready & (~code_last | release | greedy))]
        with m.Else():
            m.d.comb += [code_packer.i.valid.eq(rms_out.o.valid), rms_out.o.ready.eq(code_packer.i.ready)]
        codes_out = rms_out.o.valid & rms_out.o.ready
        with m.If(codes_out & code_last):
            m.d.sync += norm_codes_done.eq(1)
        last_pending = rms_out.o.valid & code_last
        # D is taken after the codes (the next matmul may be under way by then), or with the LM
        # head's last code held.
        m.d.comb += rms.scale.ready.eq(~d_valid & (norm_codes_done | (to_lm & last_pending)))
        with m.If(rms.scale.valid & rms.scale.ready):
            take_scale(d_scale, rms.scale.payload)
            m.d.sync += d_valid.eq(1)

        # -- LM head and sampler --------------------------------------------------------------
        sampled = sampler.o.valid & sampler.o.ready
        with m.If(sampled & sampler.o.payload.invalid):
            m.d.sync += error.eq(1)
        m.d.comb += [self.o.payload.token.eq(sampler.o.payload.token),
                     self.o.payload.last.eq(remaining == 1)]

        # -- the sequencer ----------------------------------------------------------------------
        def fetch(next_pc):
            m.d.sync += pc.eq(next_pc)
            m.next = "DECODE"

        lm_unit = scale_const(scale_from_int(1, model.lm_head.exp))
        with m.FSM(name="sequencer") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.command.ready.eq(weights_ready)
                cmd = self.command.payload
                with m.If(self.command.valid & weights_ready):
                    with m.Switch(cmd.op):
                        with m.Case(Command.TOKEN):
                            m.d.sync += [token.eq(cmd.token), generating.eq(0)]
                            fetch(0)
                        with m.Case(Command.GENERATE):
                            m.d.comb += sampler.seed_load.eq(1)
                            m.d.sync += [generating.eq(1), remaining.eq(cmd.count),
                                         greedy.eq(cmd.greedy), top_k.eq(cmd.top_k),
                                         temperature.eq(cmd.coef), self.status.tokens.eq(0)]
                            with m.If(cmd.count != 0):
                                fetch(head_start(steps))
                        with m.Case(Command.RESET):
                            m.d.sync += [position.eq(0), self.status.full.eq(0)]
            with m.State("DECODE"):
                m.next = "FETCH"
            with m.State("FETCH"):
                m.d.sync += [h_addr.eq(0), read_addr.eq(0), gate_addr.eq(0), join_addr.eq(0),
                             joined.eq(0), element.eq(0), heads_in.eq(0),
                             element_last.eq(0),
                             acc_issued.eq(0), acc_valid.eq(0), words_left.eq(route_words),
                             q_head.eq(0), q_addr.eq(0), out_head.eq(0)]
                with m.Switch(op):
                    with m.Case(Op.EMBED):
                        with m.If(position == context):
                            m.d.sync += self.status.full.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "EMBED"
                    with m.Case(Op.NORM):
                        # the RmsQuantizer takes a new vector once the previous one's D is out
                        with m.If(d_valid | first_norm):
                            m.d.sync += [norm_codes_done.eq(0), d_valid.eq(0), norm_pc.eq(pc),
                                         norm_index.eq(index), first_norm.eq(0),
                                         norm_gated.eq(source == Source.GATED)]
                            m.next = "NORM"
                        with m.Else():
                            m.next = "FETCH"
                    with m.Case(Op.MATMUL):
                        m.d.sync += prestarted.eq(0)
                        with m.If(routes[Route.Q]):
                            m.d.sync += q_pc.eq(pc)
                        with m.If(prestarted):
                            m.next = "MATMUL"
                        with m.Else():
                            m.next = "START"
                    with m.Case(Op.STEP):
                        m.d.sync += position.eq(position + 1)
                        with m.If(generating):
                            fetch(pc + 1)
                        with m.Else():
                            m.next = "IDLE"
                    with m.Case(Op.SAMPLE):
                        m.next = "SAMPLE"
            with m.State("EMBED"):
                # the token is offered once: a short row may be out of the table before its first
                # element is through the Dequantizer into H
                m.d.comb += [table.token.valid.eq(~token_sent), table.token.payload.eq(token)]
                with m.If(table.token.valid & table.token.ready):
                    m.d.sync += token_sent.eq(1)
                with m.If(h_valid & (h_addr == hidden // lanes - 1)):
                    m.d.sync += token_sent.eq(0)
                    fetch(pc + 1)
            with m.State("NORM"):
                m.d.comb += in_norm.eq(1)
                with m.If(to_lm & ~greedy & d_valid):
                    m.next = "LOGIT_SCALE"
                with m.Elif(norm_codes_done & (~to_lm | greedy)):
                    m.d.sync += forwarded.eq(0)
                    fetch(pc + 1)
            scale_product("LOGIT_SCALE", d_scale, lm_unit, logit_scale, "COEF")
            scale_product("COEF", logit_scale, temperature, sampler_coef, "RELEASE")
            with m.State("RELEASE"):
                m.d.comb += release.eq(1)
                with m.If(codes_out & code_last):
                    fetch(pc + 1)
            with m.State("START"):
                m.d.comb += [linear.start.valid.eq(1), linear.start.payload.eq(index)]
                with m.If(linear.start.ready):
                    m.next = "MATMUL"
            with m.State("MATMUL"):
                m.d.comb += in_matmul.eq(1)
                with m.If(chain & ~prestarted):
                    m.d.comb += [linear.start.valid.eq(1), linear.start.payload.eq(chain_index)]
                    with m.If(linear.start.ready):
                        m.d.sync += prestarted.eq(1)
                with m.If(forwarding):          # the previous norm is done: the next one's constants
                    m.d.sync += [norm_index.eq(forward_index), norm_gated.eq(0)]
                with m.If(~acc_issued):             # D·γ, once the norm's D is out
                    with m.If(d_valid & ~offered):
                        m.d.sync += offer(d_scale, gamma)
                    with m.If(scale_unit.i.valid & scale_unit.i.ready):
                        m.d.sync += acc_issued.eq(1)
                with m.Elif(~acc_valid):
                    m.d.comb += scale_unit.o.ready.eq(1)
                    with m.If(scale_unit.o.valid):
                        take_scale(acc_scale, scale_unit.o.payload)
                        m.d.sync += acc_valid.eq(1)
                with m.If(route == Route.GATE):
                    m.d.sync += gate_scale.eq(acc_scale)
                # q and k: their heads in the head quantizer; v: every head out of it
                heads_here = Mux(route == Route.Q, heads, kv_heads)
                done = Mux(route <= Route.V, (heads_in == heads_here) & (chain | (pending == 0)),
                           Mux(route == Route.GATE, gate_addr == ffn // lanes,
                               Mux(route == Route.UP, joined == ffn // lanes,
                                   h_addr == hidden // lanes)))
                with m.If(done & acc_valid):
                    fetch(pc + 1)
            with m.State("SAMPLE"):
                m.d.comb += [self.o.valid.eq(sampler.o.valid), sampler.o.ready.eq(self.o.ready)]
                with m.If(sampled):
                    m.d.sync += [remaining.eq(remaining - 1), self.status.tokens.eq(self.status.tokens + 1),
                                 token.eq(sampler.o.payload.token)]
                    with m.If(remaining == 1):
                        m.next = "IDLE"
                    with m.Else():
                        fetch(0)
        with m.If(stop_request(m, self.status.stop, self.o) & (remaining > 1)):
            m.d.sync += remaining.eq(1)

        # -- status --------------------------------------------------------------------------
        # busy until every block is done: a greedy LM head's D comes after the token
        busy = ~fsm.ongoing("IDLE") | (~d_valid & ~first_norm)
        m.d.comb += self.status.busy.eq(busy | ~weights_ready)
        phase = Signal(range(len(Phase)))
        head_states = ("SAMPLE", "RELEASE", "LOGIT_SCALE", "LOGIT_SCALE_WAIT", "COEF", "COEF_WAIT")
        with m.If(linear.busy):
            m.d.comb += phase.eq(Phase.MATMUL)
        with m.Elif(fsm.ongoing("NORM") & (source == Source.ATTENTION)):
            m.d.comb += phase.eq(Phase.ATTENTION)
        with m.Elif((fsm.ongoing("NORM") & to_lm) | Cat(fsm.ongoing(n) for n in head_states).any()):
            m.d.comb += phase.eq(Phase.HEAD)
        with m.Elif(Cat(fsm.ongoing(n) for n in ("NORM", "EMBED", "MATMUL")).any()):
            m.d.comb += phase.eq(Phase.VECTOR)
        with m.Else():
            m.d.comb += phase.eq(Phase.CONTROL)
        with m.If(busy):
            m.d.sync += self.status.cycles.eq(self.status.cycles + 1)
            with m.Switch(phase):
                for p in Phase:
                    with m.Case(p):
                        m.d.sync += self.phase_cycles[p].eq(self.phase_cycles[p] + 1)

        if self._taps:
            # a head's codes and scale belong to its route's MATMUL (q's, then k's and v's after it)
            heads_pc = q_pc + Mux(sinks[Route.K], 1, Mux(sinks[Route.V], 2, 0))
            self._tap(m, pc, norm_pc, heads_pc, h_valid, h_source, codes_out, rms_out.o, rms, headq,
                      head_codes, code_taken, in_norm, source, lm_table)
        return m

    def _tap(self, m, pc, norm_pc, heads_pc, h_valid, h_source, codes_out, codes, rms, headq, head_codes,
             code_taken, in_norm, source, lm_table):
        tap, lanes = self.tap, self._lanes
        att_lanes = self._attention_lanes
        m.d.comb += tap.payload.pc.eq(pc)

        def event(kind, values=(), scale=None):
            m.d.comb += [tap.valid.eq(1), tap.payload.kind.eq(kind)]
            m.d.comb += [tap.payload.data[e].eq(v) for e, v in enumerate(values)]
            if scale is not None:
                m.d.comb += [tap.payload.mant.eq(scale.mant), tap.payload.exp.eq(scale.exp)]

        words = lambda payload: [payload[e] for e in range(lanes)]   # noqa: E731
        # a norm's D, held until the port is free (it may come while that norm's codes leave)
        scale_pending = Signal()
        scale_value, scale_pc = Signal.like(rms.scale.payload), Signal.like(norm_pc)
        with m.If(h_valid):
            event(Tap.H, words(h_source))
        with m.Elif(codes_out):
            event(Tap.CODES, [codes.payload.data[e] for e in range(self.norm_lanes)])
        with m.Elif(scale_pending):
            event(Tap.SCALE, scale=scale_value)
            m.d.comb += tap.payload.pc.eq(scale_pc)       # D may come during the next matmul
            m.d.sync += scale_pending.eq(0)
        with m.Elif(code_taken):
            event(Tap.HEAD_CODES, [head_codes.payload.data[e] for e in range(att_lanes)])
            m.d.comb += tap.payload.pc.eq(heads_pc)
        with m.Elif(headq.scale.valid & headq.scale.ready):
            event(Tap.HEAD_SCALE, scale=headq.scale.payload)
            m.d.comb += tap.payload.pc.eq(heads_pc)
        with m.Elif(in_norm & (source != Source.H) & rms.i.valid & rms.i.ready):
            event(Tap.INPUT, words(rms.i.payload.data))
        with m.Elif(lm_table.logits.valid & lm_table.logits.ready):
            event(Tap.LOGIT, [lm_table.logits.payload.logit])
        with m.If(rms.scale.valid & rms.scale.ready):
            m.d.sync += [scale_pending.eq(1), scale_value.eq(rms.scale.payload), scale_pc.eq(norm_pc)]


def command(op: Command, *, token: int = 0, count: int = 0, temperature: float = 0.0,
            top_k: int | None = None, seed: int = 0) -> dict:
    """The ``command`` payload (a dict for ``ctx.set`` / the cocotb driver) of one command, with
    ``model.integer.IntegerModel.generate``'s parameters: temperature 0 is greedy; the seed
    becomes the generator state (``xorshift_seed``) and the temperature the scale ``log2(e)/T``."""
    coef = sampling_coefficient(temperature) or (0, 0)
    return {"op": int(op), "token": token, "count": count, "greedy": int(temperature <= 0),
            "coef": {"mant": int(coef[0]), "exp": int(coef[1])}, "top_k": top_k or 0,
            "seed": xorshift_seed(seed)}
