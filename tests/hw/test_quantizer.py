# amaranth: UnusedElaboratable=no
"""AbsmaxQuantizer in the Amaranth simulator, bit for bit against model.numerics.absmax_quantize."""

import random

import numpy as np
import pytest

from hw.quantizer import AbsmaxQuantizer
from hw.testing import run, stream_get, stream_put
from model.numerics import absmax_quantize


def run_tokens(dut, tokens, seed, gap=0.0, stall=0.0):
    """Send each token (length a multiple of lanes; twice with no bank); return per token (codes,
    peaks, overflow) and the edge indices of input and output transfers."""
    lanes = dut.lanes
    beats, sizes = [], []
    for token in tokens:
        rows = np.asarray(token).reshape(-1, lanes)
        beats += [{"data": r.tolist(), "last": i == len(rows) - 1} for i, r in enumerate(rows)] * (
            2 if dut.banks == 0 else 1)
        sizes.append(min(len(rows), dut.depth))
    rng = random.Random(seed)
    got, edges, overflow = [], {"i": [], "o": []}, []

    async def count(ctx):
        edge = 0
        async for _, _, iv, ir, ov, orr, last, flag in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload.last, dut.overflow):
            if iv and ir:
                edges["i"].append(edge)
            if ov and orr:
                edges["o"].append(edge)
                if last:
                    overflow.append(bool(flag))
            edge += 1

    async def put(ctx):
        await stream_put(ctx, dut.i, beats, rng, gap)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, sum(sizes), rng, stall))

    run(dut, [put, get], background=[count], max_cycles=40 * len(beats) + 60 * len(tokens) + 100,
        vcd_name=f"quantizer_w{dut.width}_l{lanes}_{seed}")
    results, start = [], 0
    for size in sizes:
        part = got[start:start + size]
        assert [bool(p.last) for p in part] == [False] * (size - 1) + [True]
        codes = np.array([[int(v) for v in p.data] for p in part]).reshape(-1)
        results.append((codes, {int(p.peak) for p in part}))
        start += size
    return results, overflow, edges


def check(dut, tokens, seed, **kw):
    """Run the tokens, check codes and peaks against the model; returns the transfer edges."""
    results, overflow, edges = run_tokens(dut, tokens, seed, **kw)
    for token, (codes, peaks) in zip(tokens, results):
        q, m = absmax_quantize(token)
        assert (codes == q).all(), f"token {token.tolist()}: hardware {codes.tolist()}, model {q.tolist()}"
        assert peaks == {m}
    assert not any(overflow)
    return edges


@pytest.mark.parametrize("width, lanes", [(8, 1), (12, 2), (20, 4), (34, 1)])
@pytest.mark.parametrize("seed, banks", [(1, 1), (2, 1), (3, 2), (4, 0)])
def test_random_tokens_with_backpressure(width, lanes, seed, banks):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = AbsmaxQuantizer(width=width, lanes=lanes, max_length=16 * lanes, banks=banks)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    tokens = []
    for _ in range(6):
        length = int(rng.integers(1, 17)) * lanes
        scale = 1 << int(rng.integers(0, width))           # small and large magnitudes
        tokens.append(np.clip(rng.integers(-scale, scale, length), lo, hi - 1))
    check(dut, tokens, seed, gap=0.3, stall=0.4)


@pytest.mark.parametrize("banks", [0, 1, 2])
def test_edge_cases(banks):
    dut = AbsmaxQuantizer(width=10, lanes=2, max_length=8, banks=banks)
    tokens = [np.zeros(4, dtype=np.int64),                  # all zero: codes 0, peak 0
              np.array([-512, 511, 1, -1]),                 # both extremes
              np.array([1, 254 // 2, -3, 0]),               # ties
              np.array([7, 7]),                             # one-beat token, equal values
              np.array([-512, -512, -512, -512, 3, 2, 1, 0])]
    check(dut, tokens, seed=0)


@pytest.mark.parametrize("banks", [0, 1, 2])
def test_exhaustive_small_width(banks):
    """Every token of two 4-bit values (all 256 pairs) in one stream."""
    dut = AbsmaxQuantizer(width=4, lanes=2, max_length=2, banks=banks)
    tokens = [np.array([a, b]) for a in range(-8, 8) for b in range(-8, 8)]
    check(dut, tokens, seed=3, gap=0.1, stall=0.1)


@pytest.mark.parametrize("banks", [0, 1])
def test_latency_is_documented(banks):
    dut = AbsmaxQuantizer(width=8, lanes=1, max_length=4, banks=banks)
    _, _, edges = run_tokens(dut, [np.array([5, -3, 100])], seed=0)
    assert edges["o"][0] - edges["i"][2] == dut.latency         # from the (first pass's) last beat
    assert edges["o"] == list(range(edges["o"][0], edges["o"][0] + 3))   # then one per cycle


@pytest.mark.parametrize("banks", [0, 1, 2])
def test_overlong_token_is_cut_and_flagged(banks):
    dut = AbsmaxQuantizer(width=8, lanes=1, max_length=3, banks=banks)
    tokens = [np.array([1, 2, 3, 100, 5]), np.array([4, -8]), np.array([9, 9, 9, 9])]
    results, overflow, _ = run_tokens(dut, tokens, seed=0)
    for token, (codes, peaks) in zip(tokens, results):
        q, m = absmax_quantize(token[:3])
        assert (codes == q).all() and peaks == {m}
    assert overflow == [True, False, True]


def test_two_banks_store_the_next_token_while_one_is_emitted():
    """Tokens back to back, no stalls: the second token is stored as soon as the first has moved
    on to its division (before its codes), the third once the first token's codes are out (both
    banks held a token); all sooner than with one bank."""
    beats = 4
    dut = AbsmaxQuantizer(width=12, lanes=2, max_length=2 * beats, banks=2)
    rng = np.random.default_rng(5)
    print("seed 5")
    tokens = [rng.integers(-2048, 2048, 2 * beats) for _ in range(4)]
    edges = check(dut, tokens, seed=5)
    second, third = edges["i"][beats], edges["i"][2 * beats]
    assert edges["i"][beats:2 * beats] == list(range(second, second + beats))
    assert second < edges["o"][0]
    assert edges["o"][beats - 1] <= third < edges["o"][beats]
    one_bank = AbsmaxQuantizer(width=12, lanes=2, max_length=2 * beats)
    _, _, one_edges = run_tokens(one_bank, tokens, seed=5)
    assert edges["o"][-1] < one_edges["o"][-1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=1, max_length=4), r"^width must be between 2 and 48 bits, not 1$"),
    (dict(width=8, lanes=0, max_length=4), r"^lanes must be a positive integer, not 0$"),
    (dict(width=8, max_length=-2), r"^max_length must be a positive integer, not -2$"),
    (dict(width=8, lanes=65, max_length=65), r"^lanes must be at most 64, not 65$"),
    (dict(width=8, max_length=4, banks=3), r"^banks must be an integer from 0 to 2, not 3$"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AbsmaxQuantizer(**kwargs)
