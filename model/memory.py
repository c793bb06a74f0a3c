"""On-chip memory a BitNet b1.58 model needs at the widths the integer contract stores, and what
each board offers; the shipped tiny models are sized with it (docs/models.md prints the tables).

Every stored width comes from model/numerics.py: 2-bit ternary codes, int8 embedding/LM-head codes
with a 16-bit mantissa per row, 16-bit norm gains, Q1.14 cos/sin tables for every position, the softmax (and SiLU) tables, int8 keys and values with one scale per token
and kv head (mantissa plus exponent), the Q15.16 residual. Block-RAM rounding (a memory uses whole
blocks) is not counted: the figures are bits, the board capacities are bits (a vendor's
"kbit" of block RAM is 1,024 bits).
"""

import dataclasses

from . import numerics as nx
from .config import BitNetConfig

STORED_SCALE_BITS = nx.SCALE_BITS + nx.SCALE_EXP_BITS    # a stored scale: mantissa and exponent


BLOCK_RAM = {"ecp5": ("EBR", 18), "ice40": ("EBR", 4), "gowin": ("BSRAM", 18)}   # name, kbit
SPRAM_KBIT = 256


@dataclasses.dataclass(frozen=True)
class Part:
    """An FPGA: its resources as nextpnr counts them, and so the on-chip memory a bitstream (or a
    boot loader) can fill. The one table of parts: the shipped models are sized with it, and the
    explorer's resource model checks fits against it."""
    name: str
    family: str
    luts: int           # ECP5 TRELLIS_COMB, iCE40 logic cells, Gowin LUT4s
    ffs: int
    ram: int            # block RAMs (BLOCK_RAM: ECP5 DP16KD 18 kbit, iCE40 4 kbit, Gowin BSRAM 18 kbit)
    dsp: int            # ECP5 MULT18X18D, iCE40 SB_MAC16, Gowin MULT18X18
    spram: int = 0      # iCE40 UP5K 256 kbit SPRAM (the weights, when loaded from flash)

    @property
    def onchip_bits(self) -> int:
        """Memory the bitstream (or a boot loader) can fill, all kinds together (a kbit is 1,024)."""
        return (self.ram * BLOCK_RAM[self.family][1] + self.spram * SPRAM_KBIT) * 1024

    @property
    def memories(self) -> str:
        kind, kbit = BLOCK_RAM[self.family]
        block = f"{self.ram} × {kbit} kbit {kind}"
        return (f"{self.spram} × {SPRAM_KBIT} kbit SPRAM (loaded from flash at boot) + {block}"
                if self.spram else block)


PARTS = {
    "LFE5U-85F": Part("LFE5U-85F", "ecp5", 83_640, 83_640, 208, 156),
    "LFE5U-45F": Part("LFE5U-45F", "ecp5", 43_848, 43_848, 108, 72),
    "LFE5U-25F": Part("LFE5U-25F", "ecp5", 24_288, 24_288, 56, 28),
    "iCE40UP5K": Part("iCE40UP5K", "ice40", 5_280, 5_280, 30, 8, spram=4),
    "GW1NR-9C": Part("GW1NR-9C", "gowin", 8_640, 6_480, 26, 20),
    "GW2A-18C": Part("GW2A-18C", "gowin", 20_736, 15_552, 46, 48),
}

# The boards the shipped models are sized for (their on-chip memory is their part's).
BOARDS = {"ulx3s": ("ULX3S 85F", PARTS["LFE5U-85F"]), "icebreaker": ("iCEBreaker", PARTS["iCE40UP5K"]),
          "tangnano9k": ("Tang Nano 9K", PARTS["GW1NR-9C"])}


def memory_budget(config: BitNetConfig, context: int | None = None) -> dict[str, int]:
    """Bits of on-chip memory by part, for a KV cache of ``context`` positions (default: all)."""
    cfg = config
    context = cfg.max_position_embeddings if context is None else context
    layers, h, ffn = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size
    kv_width = cfg.num_key_value_heads * cfg.dim_per_head
    ternary = cfg.ternary_weights
    table = cfg.vocab_size * (h * nx.ACT_BITS + nx.SCALE_BITS)
    widest = max(h, ffn, cfg.num_attention_heads * cfg.dim_per_head)
    budget = {
        "ternary weights": ternary * nx.WEIGHT_CODE_BITS,
        "weight scales": layers * len(cfg.linear_shapes()) * STORED_SCALE_BITS,
        "embedding": table,
        "LM head": 0 if cfg.tie_word_embeddings else table,
        "norm gains": (layers * sum(cfg.norm_shapes().values()) + h) * nx.GAIN_BITS,
        "RoPE tables": 2 * cfg.max_position_embeddings * (cfg.dim_per_head // 2) * nx.ROPE_BITS,
        "exp2 and sigmoid tables": nx.EXP2_TABLE.size * (nx.EXP_FRAC + 1) + (
            nx.SIGMOID_TABLE.size * nx.SIGMOID_FRAC if cfg.hidden_act == "silu" else 0),
        "KV cache": layers * 2 * context * (kv_width * nx.ACT_BITS
                                             + cfg.num_key_value_heads * STORED_SCALE_BITS),
        # residual (Q15.16), two int8 operand vectors, one row of accumulators, attention weights
        "buffers": (h * nx.RES_BITS + 2 * widest * nx.ACT_BITS
                    + widest * nx.acc_bits(widest) + context * nx.EXP_FRAC),
    }
    budget["total"] = sum(budget.values())
    return budget


SUMMARY_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "num_key_value_heads", "dim_per_head", "hidden_act",
                  "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                  "linear_class", "quantization_mode")


def checkpoint_summary(weights) -> dict[str, str]:
    """What ``tritium inspect`` shows of a checkpoint's weights (model/checkpoint.py ``Weights``):
    its config, parameter counts by kind, the ternary zero fraction and the memory budget."""
    cfg = weights.config
    rows = {field: str(getattr(cfg, field)) for field in SUMMARY_FIELDS}
    ternary = cfg.ternary_weights
    embed = weights.embed_tokens.size
    head = 0 if cfg.tie_word_embeddings else weights.lm_head.size
    norms = weights.norm.size + cfg.num_hidden_layers * sum(cfg.norm_shapes().values())
    rows["ternary weights"] = f"{ternary:,}"
    rows["ternary zero fraction"] = f"{weights.ternary_zero_fraction():.3f}"
    rows["embedding / LM head values"] = f"{embed:,} / {head:,}" + (" (tied)" if not head else "")
    rows["norm gains"] = f"{norms:,}"
    rows["parameters"] = f"{ternary + embed + head + norms:,}"
    for part, bits in memory_budget(cfg).items():
        if bits:
            rows[f"memory: {part}"] = f"{bits / 8 / 1024:,.1f} KiB"
    return rows
