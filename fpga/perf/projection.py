"""A paper projection (``tritium explore --project``): the cycle and resource models applied to
BitNet b1.58 2B4T and to larger FPGAs than ours. A projection, not a measurement: nothing here
has been built; the assumptions are stated next to each number (docs/performance.md).

The 2B4T weights (about 520 MB as our 2-bit codes) fit no FPGA's on-chip memory, so a token
streams every weight from off-chip memory once, with the LM head's int8 table and the KV cache;
decode is then bounded by the memory's bandwidth, and the array needs only as many ternary lanes
as keep up with it.
"""

import dataclasses

from hw.engine import EngineSizes
from model.config import BitNetConfig
from model.numerics import ACT_BITS, SCALE_BITS, SCALE_EXP_BITS, WEIGHT_CODE_BITS

from .cycle_model import mean_cycles

# microsoft/bitnet-b1.58-2B-4T's config.json
BITNET_2B4T = BitNetConfig(vocab_size=128256, hidden_size=2560, intermediate_size=6912,
                           num_hidden_layers=30, num_attention_heads=20, num_key_value_heads=5,
                           max_position_embeddings=4096, hidden_act="relu2", rope_theta=500000.0,
                           tie_word_embeddings=True)
SCALE_BYTES = (SCALE_BITS + SCALE_EXP_BITS) / 8
# LUT6 parts: one LUT6 taken as 1.6 LUT4s of our ECP5 fit (an assumption, not measured)
LUT4_PER_LUT6 = 1.6


@dataclasses.dataclass(frozen=True)
class Platform:
    name: str
    luts: int               # LUT4s (ECP5) or LUT6s
    lut_inputs: int
    clock_mhz: float        # a clock the engine could plausibly close (assumed, not measured)
    memory: str
    bandwidth_gbs: float    # off-chip memory, peak, from the board's datasheet


PLATFORMS = [
    Platform("ULX3S-85F (ECP5, ours)", 83_640, 4, 20, "32 MB SDRAM, 16 bit × 166 MHz", 0.33),
    Platform("Nexys Video (Artix-7 200T)", 134_600, 6, 100, "512 MB DDR3-1600, 16 bit", 3.2),
    Platform("ZCU104 (Zynq UltraScale+ ZU7EV)", 230_400, 6, 200, "2 GB DDR4-2400, 64 bit (PL)", 19.2),
    Platform("Alveo U280 (UltraScale+ VU37P)", 1_303_680, 6, 250, "8 GB HBM2", 460.0),
]


def traffic(cfg: BitNetConfig, position: int) -> dict:
    """Bytes one decode token at ``position`` moves from memory that is not on chip: every
    ternary weight (our 2-bit codes), the LM head's int8 table and row scales, the KV cache
    (int8 codes and a scale per head and position) read for ``position + 1`` positions and one
    position written."""
    layers, d, kv = cfg.num_hidden_layers, cfg.dim_per_head, cfg.num_key_value_heads
    weights = cfg.ternary_weights
    per_position = layers * 2 * kv * (d * ACT_BITS / 8 + SCALE_BYTES)      # keys and values
    return {"weights": weights * WEIGHT_CODE_BITS / 8,
            "lm_head": cfg.vocab_size * (cfg.hidden_size * ACT_BITS / 8 + SCALE_BITS / 8),
            "kv_cache": per_position * (position + 2),
            "ternary_weights": weights}


def project(cfg: BitNetConfig = BITNET_2B4T, positions=(512, 4096)) -> list[dict]:
    """Per platform and position: bytes a token, the bandwidth-bound tok/s, the ternary lanes
    (``rows·simd``) that keep up at the platform's clock and what the engine's other cycles
    (from the cycle model at such an array) leave of that rate."""
    from .resource_model import coefficients

    lut_per_lane = coefficients()["coefficients"]["luts"]["array"]
    rows = []
    for platform in PLATFORMS:
        for position in positions:
            t = traffic(cfg, position)
            total = t["weights"] + t["lm_head"] + t["kv_cache"]
            bound_tps = platform.bandwidth_gbs * 1e9 / total
            lanes = t["ternary_weights"] * bound_tps / (platform.clock_mhz * 1e6)
            array = _array_for(lanes)
            cycles = mean_cycles(cfg, array, [position])["cycles"]
            luts4 = lut_per_lane * array["rows"] * array["simd"]
            luts = luts4 / (LUT4_PER_LUT6 if platform.lut_inputs == 6 else 1)
            rows.append({"platform": platform, "position": position, "bytes": total, **t,
                         "bandwidth_tps": bound_tps, "lanes_needed": lanes, "array": array,
                         "compute_tps": platform.clock_mhz * 1e6 / cycles,
                         "array_luts": luts, "array_share": luts / platform.luts})
    return rows


def _array_for(lanes: float) -> dict:
    """The smallest power-of-two ``rows × simd`` (simd ≤ 64, dividing 2B4T's sizes) with at
    least ``lanes`` lanes, and the engine's largest lane counts."""
    simd = 64
    rows = 1
    while rows * simd < lanes:
        rows *= 2
    return EngineSizes(rows, simd, lanes=16, attention_lanes=32, head_lanes=32).as_dict()


def bandwidth_for(cfg: BitNetConfig, tokens_per_second: float, position: int) -> float:
    """Off-chip GB/s a decode rate needs at ``position``."""
    t = traffic(cfg, position)
    return tokens_per_second * (t["weights"] + t["lm_head"] + t["kv_cache"]) / 1e9


COLUMNS = ("platform", "memory (peak)", "position", "MB a token (weights + LM head + KV)",
           "bandwidth-bound tok/s", "ternary lanes to keep up", "array", "the array's LUTs (share of the part)",
           "engine-bound tok/s (cycle model)")


def cells(row: dict) -> list[str]:
    p, a = row["platform"], row["array"]
    return [p.name, f"{p.memory}: {p.bandwidth_gbs:g} GB/s", f"{row['position']:,}",
            f"{row['bytes'] / 1e6:,.0f} ({row['weights'] / 1e6:,.0f} + {row['lm_head'] / 1e6:,.0f} + "
            f"{row['kv_cache'] / 1e6:,.0f})", f"{row['bandwidth_tps']:,.1f}",
            f"{row['lanes_needed']:,.0f} at {p.clock_mhz:g} MHz", f"{a['rows']}×{a['simd']}",
            f"{row['array_luts']:,.0f} ({row['array_share']:.0%})", f"{row['compute_tps']:,.1f}"]


def table(rows: list[dict]):
    from rich.table import Table

    result = Table(title="Projection (not a measurement): BitNet b1.58 2B4T, decode")
    for name in COLUMNS:
        result.add_column(name, justify="left" if name in ("platform", "memory (peak)") else "right")
    for row in rows:
        result.add_row(*cells(row))
    return result


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def write(rows: list[dict]):
    """The projection's section of docs/performance.md."""
    from fpga.bench import write_section
    from model import paths

    bandwidths = ", ".join(f"{tps:g} tok/s {bandwidth_for(BITNET_2B4T, tps, 1024):,.1f} GB/s"
                           for tps in (1, 10, 100))
    text = ("Written by `tritium explore --project`: BitNet b1.58 2B4T decode (greedy; the "
            "explorer's cycle model with the LM head and attention at the engine's 32 lanes, "
            "vector units at 16), the array sized to the memory's bandwidth. Off-chip bandwidth a "
            f"decode rate needs at position 1,024: {bandwidths}.\n\n" + markdown(rows))
    write_section("projection", text, paths.DOCS / "performance.md")
