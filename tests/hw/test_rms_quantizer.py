# amaranth: UnusedElaboratable=no
"""RmsQuantizer in the Amaranth simulator, bit for bit against model.integer.rms_quantize."""

import random

import numpy as np
import pytest
from amaranth import Elaboratable, Module, signed
from amaranth.lib import data, memory, wiring

from hw.rms_quantizer import RmsQuantizer
from hw.testing import run, stream_get, stream_put
from model import numerics as nx
from model.integer import Gain, rms_quantize


class WithGainMemory(Elaboratable):
    """The quantizer with its gain vector in a memory on the ``gain`` read port (a word of
    ``feed_lanes`` gains)."""

    def __init__(self, dut: RmsQuantizer, gains: np.ndarray):
        self.dut = dut
        rows = np.zeros(dut.depth * dut.feed_lanes, dtype=np.int64)
        rows[:len(gains)] = gains
        self.rows = rows.reshape(dut.depth, dut.feed_lanes).tolist()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.submodules.gains = gains = memory.Memory(
            shape=data.ArrayLayout(signed(16), self.dut.feed_lanes), depth=self.dut.depth, init=self.rows)
        wiring.connect(m, self.dut.gain, gains.read_port())
        return m


def as_scale(s):
    return {"mant": int(s[0]), "exp": int(s[1])}


def run_tokens(dut, gain: Gain, x_scale, eps, tokens, seed, gap=0.0, stall=0.0, scale_stall=None):
    """Quantize each token (a multiple of lanes long); return per token (codes, (mant, exp, invalid))
    and the edges of each token's first input transfer and of its scale becoming valid. ``stall``
    drops ``o.ready`` on random cycles, ``scale_stall`` (``stall`` unless given) ``scale.ready``.
    A token's codes come a word at a time (``ratio`` beats); those past its end must be 0."""
    lanes = dut.lanes
    beats, sizes, lengths = [], [], []
    for token in tokens:
        rows = np.asarray(token).reshape(-1, lanes)
        beats.append([{"data": r.tolist(), "last": i == len(rows) - 1} for i, r in enumerate(rows)])
        sizes.append(-(-len(rows) // dut.ratio))
        lengths.append(len(token))
    rng = random.Random(seed)
    codes, scales, edges = [], [], {"i": [], "scale": []}

    async def count(ctx):
        edge, first = 0, True
        async for _, _, iv, ir, last, sv in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload.last, dut.scale.valid):
            if iv and ir:
                if first:
                    edges["i"].append(edge)
                first = bool(last)
            if sv and len(edges["scale"]) < len(edges["i"]):
                edges["scale"].append(edge)
            edge += 1

    async def put(ctx):
        for name, value in (("x_scale", x_scale), ("inv_len", gain.inv_len), ("eps", eps)):
            ctx.set(getattr(dut, name), as_scale(value))
        ctx.set(dut.gain_exp, gain.exp)
        for token in beats:
            await stream_put(ctx, dut.i, token, rng, gap)

    async def get_codes(ctx):
        got = await stream_get(ctx, dut.o, sum(sizes), rng, stall)
        start = 0
        for size, length in zip(sizes, lengths):
            part = got[start:start + size]
            assert [bool(p.last) for p in part] == [False] * (size - 1) + [True]
            words = np.array([[int(v) for v in p.data] for p in part]).reshape(-1)
            assert not words[length:].any(), "a code past the token's end is not 0"
            codes.append(words[:length])
            start += size

    async def get_scales(ctx):
        got = await stream_get(ctx, dut.scale, len(tokens), rng, stall if scale_stall is None else scale_stall)
        scales.extend((int(p.mant), int(p.exp), bool(p.invalid)) for p in got)

    harness = WithGainMemory(dut, gain.values)
    run(harness, [put, get_codes, get_scales], background=[count],
        max_cycles=sum(dut.cycles(len(b)) + 60 * len(b) for b in beats) + 200,
        vcd_name=f"rms_quantizer_w{dut.width}_l{lanes}_r{dut.ratio}_{seed}")
    return list(zip(codes, scales)), edges


def check(results, tokens, gain, x_scale, eps):
    for index, ((codes, scale), x) in enumerate(zip(results, tokens)):
        want_codes, want_scale = rms_quantize(np.asarray(x), x_scale, gain, eps)
        assert (codes == want_codes).all(), f"token {index}: codes differ"
        assert scale == (int(want_scale[0]), int(want_scale[1]), False), f"token {index}: scale differs"


def random_token(rng, n, width):
    """Magnitudes from a few bits to the full width, sometimes with zeros and extremes."""
    bits = int(rng.integers(2, width))
    x = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), n)
    if rng.random() < 0.3:
        x[rng.integers(0, n, n // 4)] = 0
    if rng.random() < 0.2:
        x[int(rng.integers(0, n))] = -(1 << (width - 1)) if rng.random() < 0.5 else (1 << (width - 1)) - 1
    return x


@pytest.mark.parametrize("lanes, ratio, n, seed", [(1, 1, 24, 1), (2, 1, 40, 2), (4, 1, 64, 3),
                                                   (4, 2, 64, 10), (2, 4, 40, 11)])
def test_random_tokens_with_backpressure(lanes, ratio, n, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    gain = Gain.from_float(rng.uniform(-2.0, 3.0, n))
    eps = nx.scale_from_float(1e-5)
    dut = RmsQuantizer(width=32, lanes=lanes, ratio=ratio, max_length=n)
    tokens = [random_token(rng, n, 32) for _ in range(6)]
    results, _ = run_tokens(dut, gain, nx.RES_UNIT, eps, tokens, seed, gap=0.3, stall=0.3)
    check(results, tokens, gain, nx.RES_UNIT, eps)


@pytest.mark.parametrize("ratio, seed", [(2, 12), (4, 13)])
def test_tokens_that_end_inside_a_word(ratio, seed):
    """Tokens of every length (in beats) up to a few words, each after a whole-length one, at 2
    lanes and ``ratio`` beats a word, in one run: the short token's last word holds the long one's
    beats past its end, which must count as zeros whatever their gains (the token is checked with
    the first gains and the run's 1/n), and their codes must be 0."""
    print(f"seed {seed}")
    lanes, n = 2, 2 * 4 * 3
    rng = np.random.default_rng(seed)
    eps = nx.scale_from_float(1e-5)
    gain = Gain.from_float(rng.uniform(-2.0, 3.0, n))
    dut = RmsQuantizer(width=32, lanes=lanes, ratio=ratio, max_length=n)
    tokens = [token for length in range(n - lanes, 0, -lanes)
              for token in (random_token(rng, n, 32), random_token(rng, length, 32))]
    results, _ = run_tokens(dut, gain, nx.RES_UNIT, eps, tokens, seed, gap=0.2, stall=0.2)
    for result, token in zip(results, tokens):
        first = Gain(gain.values[:len(token)], gain.exp, gain.inv_len)
        check([result], [token], first, nx.RES_UNIT, eps)


def test_edge_cases():
    """All zero; one element; the extremes; gains of zero (m = 0 with S > 0); a large eps; another
    input scale (the FFN sub-norm's)."""
    n = 16
    rng = np.random.default_rng(4)
    print("seed 4")
    gain = Gain.from_float(rng.uniform(0.5, 1.5, n))
    tokens = [np.zeros(n, dtype=np.int64), np.eye(1, n, 5, dtype=np.int64)[0] * -3,
              np.full(n, (1 << 31) - 1), np.full(n, -(1 << 31)),
              np.array([(1 << 31) - 1, -(1 << 31)] * (n // 2)), rng.integers(-8, 8, n)]
    for x_scale, eps in ((nx.RES_UNIT, nx.scale_from_float(1e-6)),
                         (nx.scale_from_float(3.7e-9), nx.scale_from_float(0.5))):
        dut = RmsQuantizer(width=32, lanes=2, max_length=n)
        results, _ = run_tokens(dut, gain, x_scale, eps, tokens, seed=0)
        check(results, tokens, gain, x_scale, eps)
    zero_gain = Gain(np.zeros(n, dtype=np.int64), 0, nx.scale_from_float(1 / n))
    dut = RmsQuantizer(width=32, lanes=2, max_length=n)
    results, _ = run_tokens(dut, zero_gain, nx.RES_UNIT, eps, tokens[1:3], seed=0)
    check(results, tokens[1:3], zero_gain, nx.RES_UNIT, eps)


@pytest.mark.parametrize("lanes, ratio, n", [(1, 1, 12), (4, 1, 32), (2, 2, 24), (1, 4, 12)])
def test_cycles(lanes, ratio, n):
    """From a token's first input transfer to its scale being valid: RmsQuantizer.cycles(beats)."""
    rng = np.random.default_rng(5)
    gain = Gain.from_float(rng.uniform(0.5, 1.5, n))
    dut = RmsQuantizer(width=32, lanes=lanes, ratio=ratio, max_length=n)
    tokens = [rng.integers(-(1 << 20), 1 << 20, n) for _ in range(2)]
    results, edges = run_tokens(dut, gain, nx.RES_UNIT, nx.scale_from_float(1e-5), tokens, seed=0)
    check(results, tokens, gain, nx.RES_UNIT, nx.scale_from_float(1e-5))
    assert [s - i for i, s in zip(edges["i"], edges["scale"])] == [dut.cycles(n // lanes)] * 2


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 64, "max_length": 8}, "width must be between 2 and 48 bits, not 64"),
    ({"max_length": 0}, "max_length must be a positive integer, not 0"),
    ({"max_length": 1 << 40}, "too long for a 64-bit sum of squares; at most 1073741823 would fit"),
    ({"max_length": 8, "ratio": 3}, r"ratio must be one of \[1, 2, 4\] at 1 lanes .* not 3"),
    ({"max_length": 64, "lanes": 32, "ratio": 4}, r"ratio must be one of \[1, 2\] at 32 lanes"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RmsQuantizer(**kwargs)


def test_overlong_token_is_cut_and_flagged():
    n, lanes = 8, 2
    rng = np.random.default_rng(6)
    print("seed 6")
    gain = Gain.from_float(rng.uniform(0.5, 1.5, n))
    dut = RmsQuantizer(width=32, lanes=lanes, max_length=n)
    long_token, short_token = rng.integers(-1000, 1000, n + 4), rng.integers(-1000, 1000, n)
    flags = []

    async def watch(ctx):
        async for _, _, sv, sr, flag in ctx.tick().sample(dut.scale.valid, dut.scale.ready, dut.overflow):
            if sv and sr:
                flags.append(bool(flag))

    harness = WithGainMemory(dut, gain.values)
    got = {}

    async def put(ctx):
        for name, value in (("x_scale", nx.RES_UNIT), ("inv_len", gain.inv_len), ("eps", (0, 0))):
            ctx.set(getattr(dut, name), as_scale(value))
        ctx.set(dut.gain_exp, gain.exp)
        for token in (long_token, short_token):
            rows = token.reshape(-1, lanes)
            await stream_put(ctx, dut.i, [{"data": r.tolist(), "last": i == len(rows) - 1}
                                          for i, r in enumerate(rows)])

    async def get_codes(ctx):
        got["codes"] = await stream_get(ctx, dut.o, 2 * n // lanes)

    async def get_scales(ctx):
        await stream_get(ctx, dut.scale, 2)

    run(harness, [put, get_codes, get_scales], background=[watch], max_cycles=2000, vcd_name="rms_quantizer_overflow")
    codes = np.array([[int(v) for v in p.data] for p in got["codes"]]).reshape(2, n)
    assert flags == [True, False]
    for row, token in zip(codes, (long_token[:n], short_token)):
        assert (row == rms_quantize(token, nx.RES_UNIT, gain, (0, 0))[0]).all()


@pytest.mark.parametrize("seed", [7, 8])
def test_zero_peaks_with_backpressure(seed):
    """m = 0 (all-zero tokens, and zero gains) between ordinary tokens, with eps 0 (the program's
    rsqrt of 0 is invalid, D must still be 0 and valid) and ready dropped on random cycles: D comes
    from the peak latched off the quantizer's first code."""
    print(f"seed {seed}")
    n, lanes = 16, 4
    rng = np.random.default_rng(seed)
    gain = Gain.from_float(rng.uniform(-1.5, 1.5, n))
    gain.values[:8] = 0
    tokens = []
    for _ in range(8):
        kind = rng.integers(0, 3)
        token = random_token(rng, n, 32) if kind else np.zeros(n, dtype=np.int64)
        if kind == 1:
            token[8:] = 0                  # only zero gains see nonzero x: m = 0, S > 0
        tokens.append(token)
    dut = RmsQuantizer(width=32, lanes=lanes, max_length=n)
    results, _ = run_tokens(dut, gain, nx.RES_UNIT, (0, 0), tokens, seed, gap=0.4, stall=0.5)
    check(results, tokens, gain, nx.RES_UNIT, (0, 0))


def test_feed_stalls_behind_slow_codes():
    """Codes taken on one cycle in ten while scales are taken at once: each token's feed starts while
    the previous token's codes are still leaving, so the feed pipeline (read, register, normalize,
    multiply) holds its beats while the AbsmaxQuantizer is not ready."""
    seed = 9
    print(f"seed {seed}")
    n, lanes = 48, 1
    rng = np.random.default_rng(seed)
    gain = Gain.from_float(rng.uniform(-2.0, 3.0, n))
    eps = nx.scale_from_float(1e-5)
    dut = RmsQuantizer(width=32, lanes=lanes, max_length=n)
    tokens = [random_token(rng, n, 32) for _ in range(4)]
    results, _ = run_tokens(dut, gain, nx.RES_UNIT, eps, tokens, seed, gap=0.2, stall=0.9, scale_stall=0.0)
    check(results, tokens, gain, nx.RES_UNIT, eps)
