"""An estimate of decode cycles per token for an engine built from the verified blocks run one
after another (no overlap between phases), next to the weight-read bound. Every term is a block's
own ``cycles`` formula, each checked against simulation in tests/hw; the sum is a projection, not a
measurement (the engine is not built yet). ``python -m fpga.plan`` prints the table in
docs/engine.md.
"""

from model import load_weights
from model.config import BitNetConfig

from hw.attention import AttentionHead
from hw.gated_activation import GatedActivation
from hw.quantizer import AbsmaxQuantizer
from hw.rms_quantizer import RmsQuantizer
from hw.rope import Rope
from hw.sampler import Sampler
from hw.scale_unit import ScaleOp, ScaleUnit
from hw.ternary_array import TernaryArray


def decode_phases(cfg: BitNetConfig, *, rows: int, simd: int, attention_lanes: int,
                  position: int) -> dict[str, int]:
    """Cycles per phase for the token at ``position`` (``position + 1`` cached keys)."""
    h, ffn, d = cfg.hidden_size, cfg.intermediate_size, cfg.dim_per_head
    heads, kv, layers, vocab = (cfg.num_attention_heads, cfg.num_key_value_heads,
                                cfg.num_hidden_layers, cfg.vocab_size)
    array = TernaryArray(rows=rows, cols=1, simd=simd, k_max=max(h, ffn, heads * d))
    rms = RmsQuantizer(width=32, lanes=simd, max_length=max(h, ffn, heads * d))
    head = AttentionHead(head_dim=d, lanes=attention_lanes, max_positions=cfg.max_position_embeddings)
    gated = GatedActivation(width=32, lanes=1, max_length=ffn)
    head_scale = ScaleUnit.cycles(ScaleOp.FROM_INT) + 2 * ScaleUnit.cycles(ScaleOp.MUL) + 3

    def linear(n, k):
        return 2 + array.cycles(n, k, 1)

    def beats(n):
        return -(-n // simd)
    per_layer = {
        "RMSNorm + quantize (4)": 2 * rms.cycles(beats(h)) + rms.cycles(beats(heads * d))
        + rms.cycles(beats(ffn)),
        "ternary matmuls (7)": linear(heads * d, h) + 2 * linear(kv * d, h) + linear(h, heads * d)
        + 2 * linear(ffn, h) + linear(h, ffn),
        "RoPE + head quantize": (heads + kv) * (2 * d + Rope.latency)
        + (heads + 2 * kv) * (2 * d + AbsmaxQuantizer.latency + head_scale),
        "attention": heads * (head.cycles(position + 1) + d // attention_lanes),
        "gated activation": gated.cycles(ffn),
    }
    phases = {name: layers * cycles for name, cycles in per_layer.items()}
    phases["LM head + sampling"] = vocab * (h // simd) + 2 + Sampler.cycles(vocab, vocab // 2, False)
    return phases


def weight_read_bound(cfg: BitNetConfig, rows: int, simd: int) -> float:
    """Ternary weights per token over the weights the array takes per cycle."""
    per_layer = sum(o * i for o, i in cfg.linear_shapes().values())
    return cfg.num_hidden_layers * per_layer / (rows * simd)


CASES = [("ulx3s", 8, 16, (8, 32)), ("small", 4, 8, (8, 16))]


def table() -> str:
    lines = ["| model | rows×simd | attention lanes | position | matmuls | attention | other | total "
             "| weight-read bound | total / bound |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, rows, simd, lanes_options in CASES:
        cfg = load_weights(f"models/{name}").config
        bound = weight_read_bound(cfg, rows, simd)
        for lanes in lanes_options:
            for position in (0, cfg.max_position_embeddings // 4 - 1, cfg.max_position_embeddings - 1):
                p = decode_phases(cfg, rows=rows, simd=simd, attention_lanes=lanes, position=position)
                total = sum(p.values())
                matmul, attention = p["ternary matmuls (7)"], p["attention"]
                lines.append(f"| {name} | {rows}×{simd} | {lanes} | {position} | {matmul:,} | "
                             f"{attention:,} | {total - matmul - attention:,} | {total:,} | "
                             f"{bound:,.0f} | {total / bound:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
