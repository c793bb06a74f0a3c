# amaranth: UnusedElaboratable=no
"""TokenTable in the Amaranth simulator: the embedding row's codes and scale (dequantized as
IntegerModel.embed_token computes it), the logits as model.integer.lm_head_logits."""

import random

import numpy as np
import pytest

from hw.testing import dequantized, run, stream_get, stream_put, transfer_edges
from hw.token_table import TokenTable
from model import numerics as nx
from model.integer import RowScaledInt8, lm_head_logits


def embedding(table, token):
    row_scale = nx.scale_from_int(table.rows[token], table.exp)
    return nx.saturate(nx.apply_scale(table.codes[token], row_scale, nx.RES_FRAC), nx.RES_BITS)


def random_table(rng, vocab, hidden):
    weights = rng.normal(0, 1, (vocab, hidden)) * rng.uniform(0.01, 3, (vocab, 1))
    weights[0] = 0        # an all-zero row: codes 0, row scale 0
    return RowScaledInt8.from_float(weights)


def run_table(dut, tokens, vectors, seed, gap=0.0, stall=0.0):
    rng = random.Random(seed)
    rows, logits = [], []

    async def put_tokens(ctx):
        await stream_put(ctx, dut.token, [int(t) for t in tokens], rng, gap)

    async def put_vectors(ctx):
        for x in vectors:
            words = np.asarray(x).reshape(-1, dut.lanes)
            await stream_put(ctx, dut.x, [{"data": w.tolist(), "last": i == len(words) - 1}
                                          for i, w in enumerate(words)], rng, gap)

    row_beats = dut.hidden // dut.embedding_lanes

    async def get_rows(ctx):
        for _ in tokens:
            beats = await stream_get(ctx, dut.embedding, row_beats, rng, stall)
            assert [bool(p.last) for p in beats] == [False] * (row_beats - 1) + [True]
            rows.append(dequantized(beats))

    async def get_logits(ctx):
        for _ in vectors:
            beats = await stream_get(ctx, dut.logits, dut.vocab, rng, stall)
            assert [bool(p.last) for p in beats] == [False] * (dut.vocab - 1) + [True]
            logits.append(np.array([int(p.logit) for p in beats]))

    benches = [put_tokens, get_rows] * bool(tokens) + [put_vectors, get_logits] * bool(vectors)
    budget = 10 * (len(tokens) * (row_beats + 8) + len(vectors) * (dut.logit_cycles() + dut.words)) + 100
    run(dut, benches, max_cycles=budget, vcd_name=f"token_table_l{dut.lanes}_{seed}")
    return rows, logits


@pytest.mark.parametrize("vocab, hidden, lanes, embedding_lanes, seed",
                         [(13, 12, 4, 4, 1), (7, 9, 3, 3, 2), (20, 16, 16, 16, 3), (13, 12, 4, 2, 10),
                          (11, 24, 12, 3, 11), (9, 16, 8, 1, 12)])
def test_embedding_and_logits_together_with_backpressure(vocab, hidden, lanes, embedding_lanes, seed):
    """Both uses of one table, the embedding at its own lanes (a ROM word in parts)."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    table = random_table(rng, vocab, hidden)
    dut = TokenTable(table, lanes=lanes, embedding_lanes=embedding_lanes)
    tokens = list(rng.integers(0, vocab, 8)) + [0, vocab - 1]
    vectors = [rng.integers(-127, 128, hidden) for _ in range(3)] + [np.full(hidden, -127)]
    rows, logits = run_table(dut, tokens, vectors, seed, gap=0.3, stall=0.3)
    for token, row in zip(tokens, rows):
        assert np.array_equal(row, embedding(table, token)), f"token {token}"
    for x, got in zip(vectors, logits):
        assert np.array_equal(got, lm_head_logits(table, x))


@pytest.mark.parametrize("hidden, lanes, seed", [(5, 1, 7), (16, 8, 8), (12, 6, 9)])
def test_logits_with_ready_dropped_on_random_cycles(hidden, lanes, seed):
    """The LM head's stages (ROM word and x registered, products, the lane sum in two, the dot,
    the logit) stalled from the output at random, vectors back to back, lane sums of 0 to 3 levels."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    table = random_table(rng, 11, hidden)
    dut = TokenTable(table, lanes=lanes, embedding=False)
    vectors = [rng.integers(-127, 128, hidden) for _ in range(3)] + [np.full(hidden, 127)]
    _, logits = run_table(dut, [], vectors, seed, stall=0.6)
    for x, got in zip(vectors, logits):
        assert np.array_equal(got, lm_head_logits(table, x))


def test_one_use_each():
    rng = np.random.default_rng(4)
    table = random_table(rng, 9, 8)
    head_only = TokenTable(table, lanes=2, embedding=False)
    x = rng.integers(-127, 128, 8)
    _, logits = run_table(head_only, [], [x], seed=0)
    assert np.array_equal(logits[0], lm_head_logits(table, x))
    assert not hasattr(head_only, "token")
    embed_only = TokenTable(table, lanes=8, lm_head=False)
    rows, _ = run_table(embed_only, [3, 8], [], seed=0)
    assert np.array_equal(rows[1], embedding(table, 8))


@pytest.mark.parametrize("kwargs, message", [
    ({"lanes": 5}, "lanes must divide hidden 8, not 5"),
    ({"lanes": 2, "embedding": False, "lm_head": False}, "at least one of"),
    ({"lanes": 4, "embedding_lanes": 3}, r"^embedding_lanes must divide lanes 4, not 3; \[1, 2, 4\] would$"),
])
def test_parameters_are_checked(kwargs, message):
    table = RowScaledInt8.from_float(np.ones((3, 8)))
    with pytest.raises(ValueError, match=message):
        TokenTable(table, **kwargs)


def test_logit_cycles():
    rng = np.random.default_rng(5)
    table = random_table(rng, 6, 8)
    dut = TokenTable(table, lanes=4, embedding=False)
    edges = {"x": [], "logit": []}

    async def count(ctx):
        edge = 0
        async for _, _, xv, xr, xl, lv, lr, ll in ctx.tick().sample(
                dut.x.valid, dut.x.ready, dut.x.payload.last,
                dut.logits.valid, dut.logits.ready, dut.logits.payload.last):
            if xv and xr and xl:
                edges["x"].append(edge)
            if lv and lr and ll:
                edges["logit"].append(edge)
            edge += 1

    async def put(ctx):
        await stream_put(ctx, dut.x, [{"data": [1, 2, 3, 4], "last": 0}, {"data": [5, 6, 7, 8], "last": 1}])

    async def get(ctx):
        await stream_get(ctx, dut.logits, 6)

    run(dut, [put, get], background=[count], max_cycles=200, vcd_name="token_table_cycles")
    assert edges["logit"][0] - edges["x"][0] == dut.logit_cycles()


@pytest.mark.parametrize("hidden, lanes, embedding_lanes", [(8, 4, 4), (12, 3, 3), (16, 16, 16), (16, 8, 2)])
def test_row_cycles(hidden, lanes, embedding_lanes):
    rng = np.random.default_rng(6)
    dut = TokenTable(random_table(rng, 6, hidden), lanes=lanes, embedding_lanes=embedding_lanes,
                     lm_head=False)
    count, edges = transfer_edges({"token": dut.token, "row": (dut.embedding, "last")})

    async def put(ctx):
        await stream_put(ctx, dut.token, [3, 5])

    async def get(ctx):
        await stream_get(ctx, dut.embedding, 2 * hidden // embedding_lanes)

    run(dut, [put, get], background=[count], max_cycles=200, vcd_name=f"token_table_row_cycles_l{lanes}")
    assert [r - t for t, r in zip(edges["token"], edges["row"])] == [dut.row_cycles()] * 2
