"""Every memory of a board's SoC, from the model config and the engine sizes, and how Yosys maps
each to the FPGA: block RAM (how many blocks), LUT RAM, or logic (docs/performance.md).

The list is written from the blocks (``tests/fpga/test_explore.py`` checks it against the
memories of the elaborated design); the mapping follows what Yosys's ``memory_libmap`` does with
our memories on ECP5, iCE40 and Gowin: shallow RAMs go to LUT RAM (block RAM on iCE40, which has
none), small ROMs to logic, the rest to block RAM in the aspect ratio that needs the fewest blocks.
"""

import dataclasses
import functools

from hw.engine import RESULT_FIFO_DEPTH, RESULT_STAGE_DEPTH, narrow_lanes, result_drain
from hw.linear import weight_columns
from hw.protocol import MAX_PAYLOAD, TOKEN_BYTES
from hw.gated_activation import GatedActivation
from hw.sampler import Sampler
from hw.soc import RX_FIFO_DEPTH
from hw.token_table import logit_width
from model.numerics import (ACT_BITS, ACT_MAX, EXP2_TABLE, EXP_FRAC, GAIN_BITS, RES_BITS,
                            ROPE_BITS, SCALE_BITS, SCALE_EXP_BITS, SIGMOID_FRAC, SIGMOID_TABLE,
                            WEIGHT_CODE_BITS, acc_bits)

SCALE_WORD = SCALE_BITS + SCALE_EXP_BITS        # a scale in a memory: mantissa and exponent
LUT_RAM_DEPTH = 32          # RAMs this shallow go to LUT RAM
LOGIC_ROM_BITS = 2048       # ROMs this small become logic
# Block RAM aspect ratios (width, depth) per family: ECP5 DP16KD / PDPW16KD (18 Kbit),
# iCE40 SB_RAM40_4K (4 Kbit), Gowin BSRAM (18 Kbit).
BLOCK_SHAPES = {
    "ecp5": ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
    "ice40": ((2, 2048), (4, 1024), (8, 512), (16, 256)),
    "gowin": ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
}
# the widest slice of a ROM stacked in depth (ECP5: DP16KD's 18 bits a port); a ROM no deeper than
# one block reads 36 bits through both ports (Yosys: 128×260 in 4 blocks, 256×960 in 15)
ROM_WIDTH_MAX = {"ecp5": 18, "ice40": 16, "gowin": 18}
# LUT RAM: bits of one primitive (ECP5 TRELLIS_DPR16X4 16×4; Gowin RAM16SDP4; iCE40 has none:
# every RAM, shallow or not, takes block RAM, since all our read ports are synchronous)
LUT_RAM_BITS = {"ecp5": 64, "gowin": 64, "ice40": 0}


@dataclasses.dataclass(frozen=True)
class Memory:
    name: str           # the Yosys path below the engine, e.g. "linear/weights0"
    width: int
    depth: int
    rom: bool = False
    dual: bool = False  # two read ports (a tied token table's two uses): 18 bits a block RAM at most

    @property
    def bits(self) -> int:
        return self.width * self.depth


def weight_words(cfg, rows: int, simd: int) -> int:
    """Words of ``rows·simd`` weight codes: every matrix in whole tiles of ``rows`` rows."""
    shapes = cfg.linear_shapes().values()
    return cfg.num_hidden_layers * sum(-(-n // rows) * -(-k // simd) for n, k in shapes)


def engine_memories(cfg, params: dict, *, loaded: bool = False) -> list[Memory]:
    """The memories of ``hw.engine.Engine`` (and its blocks) for ``cfg`` at ``params``' sizes;
    ``loaded``: the weights are a RAM filled from flash (not in the list when they are SPRAM)."""
    rows, simd, lanes = params["rows"], params["simd"], params["lanes"]
    att, head = params["attention_lanes"], params["head_lanes"]
    norm = lanes * params.get("norm_ratio", 1)   # the RmsQuantizer's word (Engine.norm_lanes)
    hidden, ffn, d = cfg.hidden_size, cfg.intermediate_size, cfg.dim_per_head
    layers, heads, kv, context = (cfg.num_hidden_layers, cfg.num_attention_heads,
                                  cfg.num_key_value_heads, cfg.max_position_embeddings)
    vocab, longest = cfg.vocab_size, max(hidden, ffn)
    narrow = narrow_lanes(lanes, params.get("output_lanes"))     # the head quantizer's lanes
    drain = result_drain(rows, lanes, [n for n, _ in cfg.linear_shapes().values()], cfg.dim_per_head,
                         narrow)
    acc = acc_bits(longest)                       # TernaryLinear's accumulators
    gated_act = GatedActivation.act_bits_of(cfg.hidden_act, acc)
    rms_width = max(RES_BITS, GatedActivation.out_bits_of(cfg.hidden_act))     # as the engine's
    sampler_z = Sampler.z_bits_of(logit_width(hidden))
    dot_bits = (d * ACT_MAX * ACT_MAX).bit_length() + 1
    mems = [
        # the weight memory in columns, each a memory of its own (hw.linear.weight_columns)
        *(Memory(f"linear/weights{c}", width, weight_words(cfg, rows, simd), rom=not loaded)
          for c, width in enumerate(weight_columns(WEIGHT_CODE_BITS * rows * simd))),
        Memory("linear/x_buffer", ACT_BITS * simd, longest // simd),
    ]
    # a tied table is one ROM of LM-head words (the embedding reads it in parts); else two
    tied = cfg.tie_word_embeddings
    table_lanes = head if tied else lanes
    mems += [Memory("table/codes", ACT_BITS * table_lanes, vocab * hidden // table_lanes, rom=True, dual=tied),
             Memory("table/rows", SCALE_BITS, vocab, rom=True)]
    lm_table = "table" if tied else "lm_table"
    if lm_table == "lm_table":
        mems += [Memory("lm_table/codes", ACT_BITS * head, vocab * hidden // head, rom=True),
                 Memory("lm_table/rows", SCALE_BITS, vocab, rom=True)]
    mems.append(Memory(f"{lm_table}/x_words", ACT_BITS * head, hidden // head))
    mems += [
        Memory("gated/buffer", (gated_act + acc) * lanes, ffn // lanes),
        # the buffers hold a magnitude and a sign a lane (the RmsQuantizer's AbsmaxQuantizer has
        # none: its token is read from rms/buffer twice)
        Memory("rms/buffer", (rms_width + 1) * norm, longest // norm),
        # RoPE's words of ``drain`` (the heads come as many a cycle), two banks of a half head
        Memory("rope/cos_table", ROPE_BITS * drain, context * d // 2 // drain, rom=True),
        Memory("rope/sin_table", ROPE_BITS * drain, context * d // 2 // drain, rom=True),
        Memory("rope/a_buffer", acc * drain, d // drain),
        Memory("rope/b_buffer", acc * drain, d // drain),
        # two AbsmaxQuantizers taking heads in turn, two banks each
        *(Memory(f"head_quantizer/quantizer{n}/buffer", (acc + 2) * narrow, 2 * d // narrow)
          for n in range(2)),
        Memory("kv_cache/k_codes", ACT_BITS * att, layers * kv * context * d // att),
        Memory("kv_cache/k_scales", SCALE_WORD, layers * kv * context),
        Memory("kv_cache/v_codes", ACT_BITS * att, layers * kv * context * d // att),
        Memory("kv_cache/v_scales", SCALE_WORD, layers * kv * context),
        Memory("attention/z_buffer", dot_bits + SCALE_BITS + 1, 2 * context),     # two banks each
        Memory("attention/weight_buffer", SCALE_WORD, 2 * context),
        Memory("attention/exp2", EXP_FRAC + 1, len(EXP2_TABLE), rom=True),
        Memory("sampler/z_buffer", sampler_z, vocab),
        Memory("sampler/exp2", EXP_FRAC + 1, len(EXP2_TABLE), rom=True),
        Memory("h_buffer", RES_BITS * lanes, hidden // lanes),
        Memory("gate_buffer", acc * lanes, ffn // lanes),
        Memory("q_buffer", ACT_BITS * att, heads * d // att),
        Memory("q_scales", SCALE_WORD, heads),
        Memory("gains", GAIN_BITS * norm, (layers * (3 * hidden + ffn) + hidden) // norm,
               rom=True),
        # words of `drain` results: the queue (its last word the buffered FIFO's output register),
        # then the words staged before the output path
        Memory("queued_results/storage", acc * drain, RESULT_FIFO_DEPTH - 1),
        Memory("results/storage", acc * drain, RESULT_STAGE_DEPTH),
    ]
    if cfg.hidden_act == "silu":
        mems.append(Memory("gated/sigmoid", SIGMOID_FRAC, SIGMOID_TABLE.size, rom=True))
    return mems


def soc_memories(cfg, params: dict, *, loaded: bool = False, spram: bool = False) -> list[Memory]:
    """The SoC's memories (``hw.soc.Soc``): the engine's (as ``engine/...``), HostLink's token
    buffer, the UART receive FIFO. With ``spram`` the weights are in SPRAM, not listed."""
    mems = [dataclasses.replace(m, name=f"engine/{m.name}")
            for m in engine_memories(cfg, params, loaded=loaded)
            if not (spram and m.name.startswith("linear/weights"))]
    return mems + [Memory("link/buffer", 16, MAX_PAYLOAD // TOKEN_BYTES),
                   Memory("rx_fifo/storage", 8, RX_FIFO_DEPTH - 1)]


@dataclasses.dataclass
class Mapped:
    memory: Memory
    kind: str           # "block", "lut", "logic"
    blocks: int = 0     # block RAMs
    lut_rams: int = 0   # LUT RAM primitives
    mux_bits: int = 0   # read data bits chosen among blocks stacked in depth (a LUT mux each)


@functools.lru_cache(maxsize=None)
def block_slices(width: int, depth: int, family: str, rom: bool = False, dual: bool = False) -> tuple:
    """How Yosys cuts a ``width × depth`` memory into block RAMs: its data bits in slices, each in
    the aspect ratio ``(w, d)`` that suits it (a 32-bit ECP5 ROM 7,680 deep: 18 bits in eight
    1024-deep blocks, 9 in four 2048-deep, 4 in two 4096-deep, 1 in one: 15 blocks); the cut that
    needs the fewest blocks."""
    shapes = [(w, d) for w, d in BLOCK_SHAPES[family]
              if not (rom and w > ROM_WIDTH_MAX[family] and (depth > d or dual))]
    cost, choice = [0] * (width + 1), [None] * (width + 1)
    for bits in range(1, width + 1):
        cost[bits], choice[bits] = min((-(-depth // d) + cost[max(0, bits - w)], (w, d))
                                       for w, d in shapes)
    slices, bits = [], width
    while bits > 0:
        slices.append(choice[bits])
        bits -= choice[bits][0]
    return tuple(slices)


def blocks_for(width: int, depth: int, family: str, rom: bool = False) -> int:
    return sum(-(-depth // d) for _, d in block_slices(width, depth, family, rom))


def map_memory(memory: Memory, family: str, distributed: bool = False) -> Mapped:
    """Where Yosys puts ``memory`` (``distributed``: forced to LUT RAM by ``ram_style``)."""
    if memory.rom and memory.bits <= LOGIC_ROM_BITS:
        return Mapped(memory, "logic")
    lut_bits = LUT_RAM_BITS[family]
    if not memory.rom and lut_bits and (distributed or memory.depth <= LUT_RAM_DEPTH):
        return Mapped(memory, "lut", lut_rams=-(-memory.width // 4) * -(-memory.depth // 16))
    slices = block_slices(memory.width, memory.depth, family, memory.rom, memory.dual)
    stacked = [(w, -(-memory.depth // d)) for w, d in slices]
    return Mapped(memory, "block", blocks=sum(n for _, n in stacked),
                  mux_bits=sum(w * (n - 1) for w, n in stacked))


def soc_names(engine_memories) -> frozenset:
    """Engine memories ("rms/buffer", as ``Board.distributed_ram`` names them) as the SoC's memory
    names here ("engine/rms/buffer")."""
    return frozenset(f"engine/{name}" for name in engine_memories)

