# amaranth: UnusedElaboratable=no
"""KvCache written as HeadQuantizer emits heads and read by an AttentionHead: attention over each
(layer, kv head) region equals model.integer.attend over what was written there, and the value
scales and values ports read the regions of their own heads (``value_scales_head``,
``values_head``)."""

import math

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring

from hw.attention import AttentionHead
from hw.kv_cache import KvCache
from hw.testing import dequantized, run, stream_get, stream_put
from model import numerics as nx
from model.integer import attend
from tests.hw.test_attention import quantized_head


class CacheAndHead(Elaboratable):
    def __init__(self, cache, head):
        self.cache, self.head = cache, head

    def elaborate(self, platform):
        m = Module()
        m.submodules.cache, m.submodules.head = self.cache, self.head
        for port in ("keys", "values", "key_scales", "value_scales"):
            wiring.connect(m, getattr(self.head, port), getattr(self.cache, port))
        return m


@pytest.mark.parametrize("lanes, seed", [(1, 1), (4, 2)])
def test_regions_written_then_attended(lanes, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layers, kv_heads, d, positions = 2, 2, 8, 6
    cache = KvCache(layers=layers, kv_heads=kv_heads, head_dim=d, positions=positions, lanes=lanes)
    head = AttentionHead(head_dim=d, lanes=lanes, max_positions=positions)
    # what each region holds: codes [positions, d] and scales for K and V
    contents = {(layer, h): {kind: [quantized_head(rng, d, 2.0) for _ in range(positions)]
                             for kind in ("k", "v")}
                for layer in range(layers) for h in range(kv_heads)}
    # (layer, kv head of the keys, of the value scales, of the values): the same, then elsewhere
    queries = [((layer, h, (h + scales) % kv_heads, (h + values) % kv_heads),
                quantized_head(rng, d, 2.0), int(rng.integers(1, positions + 1)))
               for layer in range(layers) for h in range(kv_heads)
               for scales, values in ((0, 0), (1, 0), (0, 1))]
    score_coef = nx.scale_from_float(math.log2(math.e) / math.sqrt(d))
    outputs = []

    async def bench(ctx):
        for (layer, h), entries in contents.items():
            ctx.set(cache.write_layer, layer)
            ctx.set(cache.write_head, h)
            for position in range(positions):
                ctx.set(cache.write_position, position)
                for kind in ("k", "v"):
                    codes, scale = entries[kind][position]
                    words = codes.reshape(-1, lanes)
                    await stream_put(ctx, getattr(cache, kind),
                                     [{"data": w.tolist(), "last": i == len(words) - 1}
                                      for i, w in enumerate(words)])
                    await stream_put(ctx, getattr(cache, f"{kind}_scale"),
                                     [{"mant": scale[0], "exp": scale[1], "invalid": 0}])
        ctx.set(head.score_coef, {"mant": score_coef[0], "exp": score_coef[1]})
        for (layer, h, scales_head, values_head), (q, q_scale), length in queries:
            ctx.set(cache.read_layer, layer)
            ctx.set(cache.read_head, h)
            ctx.set(cache.value_scales_head, scales_head)
            ctx.set(cache.values_head, values_head)
            ctx.set(head.q_scale, {"mant": q_scale[0], "exp": q_scale[1]})
            ctx.set(head.length, length)
            await stream_put(ctx, head.q, q.reshape(-1, lanes).tolist())
            beats = await stream_get(ctx, head.o, d // lanes)
            outputs.append(dequantized(beats))

    run(CacheAndHead(cache, head), [bench], max_cycles=100_000, vcd_name=f"kv_cache_{seed}")
    for (((layer, h, scales_head, values_head), (q, q_scale), length), got) in zip(queries, outputs):
        k, v = contents[layer, h]["k"][:length], contents[layer, scales_head]["v"][:length]
        v_codes = contents[layer, values_head]["v"][:length]
        want = attend(q, q_scale, np.stack([c for c, _ in k]),
                      (np.array([s[0] for _, s in k]), np.array([s[1] for _, s in k])),
                      np.stack([c for c, _ in v_codes]),
                      (np.array([s[0] for _, s in v]), np.array([s[1] for _, s in v])), score_coef)
        assert np.array_equal(got, want), (f"layer {layer}, heads {h}/{scales_head}/{values_head}, "
                                           f"length {length}")


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="lanes must divide head_dim 8, not 3"):
        KvCache(layers=1, kv_heads=1, head_dim=8, positions=4, lanes=3)
