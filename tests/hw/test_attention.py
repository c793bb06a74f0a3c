# amaranth: UnusedElaboratable=no
"""AttentionHead in the Amaranth simulator, bit for bit against model.integer.attend."""

import math
import random

import numpy as np
import pytest
from amaranth import Elaboratable, Module, signed
from amaranth.lib import data, memory, wiring

from hw.attention import LANES_PER_ALIGNED, AttentionHead
from hw.scale_unit import scale_layout
from hw.testing import dequantized, run, stream_get, stream_put
from model import numerics as nx
from model.integer import attend, quantize_heads


class WithCache(Elaboratable):
    """The head with a KV cache in memories on its four read ports."""

    def __init__(self, dut: AttentionHead, keys, key_scales, values, value_scales):
        self.dut = dut
        self.cache = (keys, key_scales, values, value_scales)

    def elaborate(self, platform):
        m = Module()
        dut, (keys, key_scales, values, value_scales) = self.dut, self.cache
        m.submodules.dut = dut
        word = data.ArrayLayout(signed(8), dut.lanes)
        scale = scale_layout(len(dut.q_scale.exp))
        depth = dut.max_positions
        for name, shape, rows in (
                ("keys", word, keys.reshape(-1, dut.lanes).tolist()),
                ("values", word, values.reshape(-1, dut.lanes).tolist()),
                ("key_scales", scale, [{"mant": int(a), "exp": int(b)} for a, b in zip(*key_scales)]),
                ("value_scales", scale, [{"mant": int(a), "exp": int(b)} for a, b in zip(*value_scales)])):
            size = depth * dut.words if name in ("keys", "values") else depth
            mem = memory.Memory(shape=shape, depth=size, init=rows)
            m.submodules[name] = mem
            wiring.connect(m, getattr(dut, name), mem.read_port())
        return m


def quantized_head(rng, d, spread):
    """A head quantized from random accumulators, as the integer model makes them; its real values
    have a peak of about ``spread``."""
    acc = rng.integers(-(1 << 14), 1 << 14, (1, d)) >> int(rng.integers(0, 12))
    peak = max(1, int(np.abs(acc).max()))
    codes, (m, e) = quantize_heads(acc, nx.scale_from_float(spread * float(rng.uniform(0.5, 2)) / peak))
    return codes[0], (int(m[0]), int(e[0]))


def random_cache(rng, positions, d, spread=2.0):
    """Keys and values for ``positions``; scores q·k/sqrt(d) of a few units, so the softmax spreads
    over several keys."""
    def quantized(count):
        heads = [quantized_head(rng, d, spread) for _ in range(count)]
        return (np.array([c for c, _ in heads]),
                (np.array([s[0] for _, s in heads]), np.array([s[1] for _, s in heads])))
    keys, key_scales = quantized(positions)
    values, value_scales = quantized(positions)
    return keys, key_scales, values, value_scales


def run_queries(dut, cache, queries, seed, gap=0.0, stall=0.0, overlap=False):
    """Each query is (q codes [d], q scale, length); returns the head outputs [d] and, per query,
    the edges of its last q beat, its first output offered and its last output beat taken (the
    first two only without ``overlap``). With ``overlap`` the next query is
    offered as soon as the head takes queries again (its scale and length set then), not after
    the previous output."""
    rng = random.Random(seed)
    outputs, edges = [], {"q": [], "o": [], "last": [], "end": 0}
    score_coef = nx.scale_from_float(math.log2(math.e) / math.sqrt(dut.head_dim))

    async def count(ctx):
        edge, beats = 0, 0
        async for _, _, qv, qr, ov, orr, last in ctx.tick().sample(
                dut.q.valid, dut.q.ready, dut.o.valid, dut.o.ready, dut.o.payload.last):
            if ov and orr:
                edges["end"] = edge
                if last:
                    edges["last"].append(edge)
            if qv and qr:
                beats += 1
                if beats % dut.words == 0:
                    edges["q"].append(edge)
            if ov and len(edges["o"]) < len(edges["q"]):
                edges["o"].append(edge)
            edge += 1

    async def put(ctx):
        ctx.set(dut.score_coef, {"mant": score_coef[0], "exp": score_coef[1]})
        for index, (q, q_scale, length) in enumerate(queries):
            if overlap:
                await ctx.tick().until(dut.q.ready)
            ctx.set(dut.q_scale, {"mant": int(q_scale[0]), "exp": int(q_scale[1])})
            ctx.set(dut.length, length)
            await stream_put(ctx, dut.q, np.asarray(q).reshape(-1, dut.lanes).tolist(), rng, gap)
            while not overlap and len(outputs) <= index:
                await ctx.tick()

    async def get(ctx):
        for _ in queries:
            beats = await stream_get(ctx, dut.o, dut.out_beats, rng, stall)
            assert [bool(p.last) for p in beats] == [False] * (dut.out_beats - 1) + [True]
            assert not any(p.invalid for p in beats)
            outputs.append(dequantized(beats))

    budget = sum(dut.cycles(length) * 3 for _, _, length in queries) + 200
    run(WithCache(dut, *cache), [put, get], background=[count], max_cycles=budget,
        vcd_name=f"attention_d{dut.head_dim}_l{dut.lanes}_{seed}")
    return outputs, edges


def expected(dut, cache, queries):
    keys, key_scales, values, value_scales = cache
    score_coef = nx.scale_from_float(math.log2(math.e) / math.sqrt(dut.head_dim))
    return [attend(np.asarray(q), q_scale, keys[:n], (key_scales[0][:n], key_scales[1][:n]),
                   values[:n], (value_scales[0][:n], value_scales[1][:n]), score_coef)
            for q, q_scale, n in queries]


def random_queries(rng, d, positions, count, spread=2.0):
    return [quantized_head(rng, d, spread) + (int(rng.integers(1, positions + 1)),)
            for _ in range(count)]


@pytest.mark.parametrize("d, lanes, out_lanes, positions, seed",
                         [(8, 1, 1, 12, 1), (16, 4, 4, 20, 2), (12, 12, 12, 9, 3), (16, 4, 1, 20, 8),
                          (12, 12, 4, 9, 9)])
def test_random_queries_with_backpressure(d, lanes, out_lanes, positions, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = AttentionHead(head_dim=d, lanes=lanes, out_lanes=out_lanes, max_positions=positions)
    cache = random_cache(rng, positions, d)
    queries = random_queries(rng, d, positions, 5) + [random_queries(rng, d, positions, 1)[0][:2] + (positions,)]
    got, _ = run_queries(dut, cache, queries, seed, gap=0.3, stall=0.3)
    for index, (g, want) in enumerate(zip(got, expected(dut, cache, queries))):
        assert np.array_equal(g, want), f"query {index}"


def test_one_position_and_sharp_scores():
    """A cache of one position (the softmax is that one key); scores so far apart that all but
    the top key get p = 0."""
    rng = np.random.default_rng(4)
    print("seed 4")
    d, positions = 8, 6
    dut = AttentionHead(head_dim=d, lanes=2, max_positions=positions)
    cache = random_cache(rng, positions, d)
    keys, key_scales, values, value_scales = cache
    sharp = (keys, (key_scales[0], key_scales[1] + 12), values, value_scales)
    q = np.full(d, 127)
    queries = [(q, (1 << 15, -22), 1), (q, (1 << 15, -22), positions)]
    for c in (cache, sharp):
        got, _ = run_queries(dut, c, queries, seed=0)
        for g, want in zip(got, expected(dut, c, queries)):
            assert np.array_equal(g, want)


def check_results_and_cycles(dut, rng, positions, count, seed):
    """``count`` random queries: outputs equal to ``attend``, each taking ``dut.cycles``."""
    d = dut.head_dim
    cache = random_cache(rng, positions, d)
    queries = random_queries(rng, d, positions, count)
    got, edges = run_queries(dut, cache, queries, seed=seed)
    for g, want in zip(got, expected(dut, cache, queries)):
        assert np.array_equal(g, want)
    assert [o - q for q, o in zip(edges["q"], edges["o"])] == [dut.cycles(n) for _, _, n in queries]


@pytest.mark.parametrize("lanes, out_lanes", [(1, 1), (2, 2), (8, 8), (8, 2)])
def test_cycles(lanes, out_lanes):
    dut = AttentionHead(head_dim=8, lanes=lanes, out_lanes=out_lanes, max_positions=10)
    check_results_and_cycles(dut, np.random.default_rng(5), 10, 3, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"head_dim": 12, "lanes": 5, "max_positions": 8}, r"lanes must divide head_dim 12, not 5"),
    ({"head_dim": 8, "max_positions": 0}, "max_positions must be an integer"),
    ({"head_dim": 8, "lanes": 4, "out_lanes": 3, "max_positions": 4}, r"out_lanes must divide lanes 4, not 3"),
    ({"head_dim": 8, "lanes": 4, "out_lanes": 8, "max_positions": 4}, "out_lanes must be an integer from 1 to 4"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionHead(**kwargs)


@pytest.mark.parametrize("lanes, stall", [(1, 0.0), (4, 0.5)])
def test_next_query_while_the_previous_output_is_made(lanes, stall):
    """The next query is scored while the previous one's row scale is made and its output leaves."""
    print("seed 6")
    rng = np.random.default_rng(6)
    d, positions = 8, 12
    dut = AttentionHead(head_dim=d, lanes=lanes, max_positions=positions)
    cache = random_cache(rng, positions, d)
    queries = random_queries(rng, d, positions, 4) + [(np.full(d, 3), (1 << 15, -20), 1)]
    got, edges = run_queries(dut, cache, queries, seed=6, stall=stall, overlap=True)
    for g, want in zip(got, expected(dut, cache, queries)):
        assert np.array_equal(g, want)
    # faster than one query after another: each query's beats, its cycles, its output beats
    one_by_one = sum(2 * dut.words + dut.cycles(n) for _, _, n in queries)
    print(f"{edges['end']} cycles for {len(queries)} queries, {one_by_one} one after another")
    assert stall or edges["end"] < one_by_one


def test_deep_adder_tree():
    """33 lanes: the adder tree outlasts the score coefficient's products, so the coefficient waits
    for the dot product, and the values pass's aligned weight has three copies (one a
    ``LANES_PER_ALIGNED`` lanes, the last for one lane); results and cycles as documented."""
    print("seed 7")
    d = 33
    dut = AttentionHead(head_dim=d, lanes=d, max_positions=3)
    assert AttentionHead.stages_of(d)["product"] > AttentionHead.stages_of(d)["coef"]
    assert -(-d // LANES_PER_ALIGNED) == 3
    check_results_and_cycles(dut, np.random.default_rng(7), 3, 2, seed=7)


@pytest.mark.parametrize("d, lanes, out_lanes, length", [(8, 1, 1, 12), (16, 4, 2, 20), (8, 4, 4, 3),
                                                         (8, 8, 8, 1), (32, 16, 4, 23),
                                                         (32, 32, 2, 9)])
def test_queries_back_to_back_come_every_period(d, lanes, out_lanes, length):
    """Three queries in flight (one scored, one weighed, one summed and output): queries offered
    back to back leave every ``period_of`` cycles (the query and scores bound the first and the
    last, the values and output the second, the row scale and output the third and fourth), with
    every output equal to ``attend``."""
    print("seed 7")
    rng = np.random.default_rng(7)
    dut = AttentionHead(head_dim=d, lanes=lanes, out_lanes=out_lanes, max_positions=max(length, 4))
    cache = random_cache(rng, dut.max_positions, d)
    queries = [q[:2] + (length,) for q in random_queries(rng, d, dut.max_positions, 5)]
    got, edges = run_queries(dut, cache, queries, seed=7, overlap=True)
    for index, (g, want) in enumerate(zip(got, expected(dut, cache, queries))):
        assert np.array_equal(g, want), f"query {index}"
    period = AttentionHead.period_of(length, dut.words, lanes, dut.out_beats)
    assert np.diff(edges["last"]).tolist() == [period] * (len(queries) - 1)
