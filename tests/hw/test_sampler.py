# amaranth: UnusedElaboratable=no
"""Sampler in the Amaranth simulator, token for token against model.integer.sample."""

import math
import random

import numpy as np
import pytest

from hw.sampler import Sampler
from hw.testing import run, stream_get, stream_put
from model import numerics as nx
from model.integer import sample


def run_positions(dut, positions, seed, gap=0.0, stall=0.0):
    """Each position is (logits, coef scale or None for greedy, top_k); the generator is seeded with
    ``seed`` first. Returns [(token, invalid)] and, per position, the edges of its last logit's
    transfer and of its token becoming valid."""
    rng = random.Random(seed)
    got, edges = [], {"last": [], "token": []}

    async def count(ctx):
        edge = 0
        async for _, _, iv, ir, last, ov in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload.last, dut.o.valid):
            if iv and ir and last:
                edges["last"].append(edge)
            if ov and len(edges["token"]) < len(edges["last"]):
                edges["token"].append(edge)
            edge += 1

    async def put(ctx):
        ctx.set(dut.seed, seed & 0xFFFFFFFF)
        ctx.set(dut.seed_load, 1)
        await ctx.tick()
        ctx.set(dut.seed_load, 0)
        for index, (logits, coef, top_k) in enumerate(positions):
            ctx.set(dut.greedy, coef is None)
            if coef is not None:
                ctx.set(dut.coef, {"mant": int(coef[0]), "exp": int(coef[1])})
            ctx.set(dut.top_k, top_k)
            await stream_put(ctx, dut.i, [{"logit": int(v), "last": i == len(logits) - 1}
                                          for i, v in enumerate(logits)], rng, gap)
            while len(got) <= index:    # settings hold until this position's token is out
                await ctx.tick()

    async def get(ctx):
        for _ in positions:
            (payload,) = await stream_get(ctx, dut.o, 1, rng, stall)
            got.append((int(payload.token), bool(payload.invalid)))

    longest = max(len(p[0]) for p in positions)
    run(dut, [put, get], background=[count], max_cycles=len(positions) * (6 * longest + 60) + 100,
        vcd_name=f"sampler_{seed}")
    return got, edges


def reference(positions, seed):
    """Tokens from model.integer.sample, the generator state carried from position to position."""
    state, tokens = nx.xorshift_seed(seed), []
    for logits, (logit_scale, temperature_coef), top_k in positions:
        token, state = sample(np.asarray(logits), logit_scale, temperature_coef, top_k or None, state)
        tokens.append((token, False))
    return tokens


def random_position(rng, vocab, k_max, greedy=False):
    """Logits of LM-head size (up to 2^38) whose real values spread like a trained model's, a
    temperature, a top-k; sometimes only a few distinct values (ties)."""
    if rng.random() < 0.3:
        logits = rng.choice(rng.integers(-(1 << 30), 1 << 30, 4), vocab)
    else:
        logits = rng.integers(-(1 << 30), 1 << 30, vocab)
    logit_scale = nx.scale_from_float(float(rng.uniform(2, 12)) / (1 << 30))
    temperature = float(rng.choice([0.3, 0.8, 1.0, 1.7]))
    coef = None if greedy else nx.scale_from_float(math.log2(math.e) / temperature)
    top_k = int(rng.choice([k for k in (0, 1, 2, 5, k_max, vocab + 3) if k <= k_max]))
    return logits, (logit_scale, coef), top_k


def hardware_positions(positions):
    return [(logits, None if coef is None else nx.scale_mul(scale, coef), top_k)
            for logits, (scale, coef), top_k in positions]


@pytest.mark.parametrize("vocab, k_max, seed", [(65, 32, 1), (20, 32, 2), (41, 8, 3)])
def test_sampling_matches_the_integer_model(vocab, k_max, seed):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = Sampler(logit_width=40, vocab_max=vocab, k_max=k_max)
    positions = [random_position(rng, vocab, k_max) for _ in range(12)]
    got, _ = run_positions(dut, hardware_positions(positions), seed, gap=0.2, stall=0.3)
    assert got == reference(positions, seed)


def test_greedy_is_the_first_maximum():
    rng = np.random.default_rng(4)
    print("seed 4")
    dut = Sampler(logit_width=40, vocab_max=30, k_max=4)
    positions = [random_position(rng, 30, 4, greedy=True) for _ in range(6)]
    positions.append((np.array([5, 9, -3, 9, 9] + [0] * 25), (nx.scale_from_float(1.0), None), 0))
    got, _ = run_positions(dut, hardware_positions(positions), seed=4)
    assert got == [(int(np.argmax(p[0])), False) for p in positions]
    assert got[-1] == (1, False)


def test_greedy_and_sampling_interleave_on_one_generator():
    """Greedy positions leave the generator state alone, as in IntegerModel.generate."""
    rng = np.random.default_rng(5)
    print("seed 5")
    dut = Sampler(logit_width=40, vocab_max=16, k_max=4)
    positions = [random_position(rng, 16, 4, greedy=bool(i % 2)) for i in range(8)]
    got, _ = run_positions(dut, hardware_positions(positions), seed=0)
    state, want = nx.xorshift_seed(0), []
    for logits, (scale, coef), top_k in positions:
        token, state = sample(logits, scale, coef, top_k or None, state)
        want.append((token, False))
    assert got == want


def test_invalid_settings_are_flagged():
    dut = Sampler(logit_width=40, vocab_max=8, k_max=4)
    logits = np.arange(8)
    positions = [(logits, (1 << 15, -20), 7),        # top_k above k_max
                 (np.arange(9), (1 << 15, -20), 0),  # more logits than vocab_max
                 (logits, None, 0)]                  # and the unit recovers
    got, _ = run_positions(dut, positions, seed=1)
    assert got == [(0, True), (0, True), (7, False)]


@pytest.mark.parametrize("greedy", [True, False])
def test_cycles(greedy):
    rng = np.random.default_rng(6)
    dut = Sampler(logit_width=40, vocab_max=24, k_max=4)
    positions = [random_position(rng, 24, 4, greedy=greedy) for _ in range(3)]
    got, edges = run_positions(dut, hardware_positions(positions), seed=6)
    assert got == ([(int(np.argmax(p[0])), False) for p in positions] if greedy
                   else reference(positions, 6))
    assert [t - last for last, t in zip(edges["last"], edges["token"])] == \
        [dut.cycles(24, token, greedy) for token, _ in got]


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_max": 1}, "vocab_max must be an integer from 2 to 1048576, not 1"),
    ({"vocab_max": 65, "k_max": 65}, "k_max must be an integer from 1 to 64, not 65"),
    ({"vocab_max": 65, "logit_width": 4}, "logit_width must be an integer from 8 to 48, not 4"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sampler(**kwargs)


def test_small_logits_with_a_large_coefficient_shift_left():
    """Where numerics shifts L · coef left (coef's exponent above -8) the tokens are still its own:
    only ties of the largest logit have p > 0 (many ties here)."""
    rng = np.random.default_rng(7)
    print("seed 7")
    dut = Sampler(logit_width=40, vocab_max=12, k_max=4)
    positions = [(rng.integers(-3, 4, 12), ((int(rng.integers(1 << 15, 1 << 16)), int(e)),
                                            (1 << 15, -15)), int(k))
                 for e, k in zip(rng.integers(-8, 0, 32), rng.choice([0, 1, 2, 4], 32))]
    assert all(-(nx.scale_mul(*p[1])[1] + 8) <= 0 for p in positions)
    got, _ = run_positions(dut, hardware_positions(positions), seed=7)
    assert got == reference(positions, 7)


def test_the_near_window_ties_and_short_positions():
    """z = L here (the scale is 2^-8 and z is Q.8): many z within 16·2^8 of the largest and many
    ties, so entries enter and leave the kept set and the k-th ties (kept to the lower index); the
    largest logit sometimes last (max z known only as pass 2 starts), positions of one and two logits."""
    rng = np.random.default_rng(8)
    print("seed 8")
    dut = Sampler(logit_width=40, vocab_max=20, k_max=6)
    unit = ((1 << 15, -23), (1 << 15, -15))
    assert nx.scale_mul(*unit) == (1 << 15, -23)
    positions = []
    for i in range(30):
        logits = rng.integers(-12, 3, [1, 2, 20][i % 3]) * int(rng.choice([16, 100, 300]))
        if rng.random() < 0.3:
            logits = np.sort(logits)
        positions.append((logits, unit, int(rng.choice([0, 1, 2, 3, 6]))))
    got, _ = run_positions(dut, hardware_positions(positions), seed=8, gap=0.2, stall=0.3)
    assert got == reference(positions, 8)
