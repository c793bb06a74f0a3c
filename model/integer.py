"""The integer BitNet b1.58: exactly what the hardware computes (docs/numerics.md).

Constants are prepared once from a float checkpoint (``IntegerModel(weights)``); after
that every step is integer arithmetic from :mod:`model.numerics`. The block functions here
(:func:`rms_quantize`, :func:`ternary_matmul`, :func:`attend`, :func:`gated_activation`,
:func:`lm_head_logits`, :func:`sample`) are the golden references the gateware tests call.

A token is processed as the hardware processes it: one position at a time against the KV cache,
so ``forward`` over a prompt and ``generate`` share one code path.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np

from . import numerics as nx
from .bitnet import check_context, check_prompt, check_tokens
from .checkpoint import Weights, field_name, load_weights, random_checkpoint
from .config import BitNetConfig

# -- offline constant preparation (floats allowed only here) ------------------------------------

@dataclasses.dataclass(frozen=True)
class Gain:
    """RMSNorm gain: int16 values G with a common exponent, g ≈ G * 2^-exp (§4)."""
    values: np.ndarray
    exp: int
    inv_len: tuple   # the scale 1/n, n = len(values)

    @classmethod
    def from_float(cls, g: np.ndarray) -> "Gain":
        g = np.asarray(g, dtype=np.float64)
        limit = (1 << (nx.GAIN_BITS - 1)) - 1
        peak = np.abs(g).max(initial=0.0)
        exp = 0 if peak == 0 else nx.GAIN_BITS - 1 - math.ceil(math.log2(peak))
        values = np.floor(g * 2.0 ** exp + 0.5)
        while np.abs(values).max(initial=0) > limit:
            exp -= 1
            values = np.floor(g * 2.0 ** exp + 0.5)
        return cls(values.astype(np.int64), exp, nx.scale_from_float(1 / len(g)))


@dataclasses.dataclass(frozen=True)
class RowScaledInt8:
    """An int8 matrix with one scale per row on a common exponent: W ≈ codes * rows * 2^exp (§4).

    Used for the token embedding and the LM head (the same table when they are tied).
    """
    codes: np.ndarray   # int8 values [vocab, hidden], per-row absmax, round half to even
    rows: np.ndarray    # unsigned 16-bit row mantissas
    exp: int

    @classmethod
    def from_float(cls, w: np.ndarray) -> "RowScaledInt8":
        w = np.asarray(w, dtype=np.float64)
        peak = np.abs(w).max(axis=1)
        safe = np.where(peak > 0, peak, 1.0)
        codes = np.clip(np.round(w * (nx.ACT_MAX / safe)[:, None]), -nx.ACT_MAX, nx.ACT_MAX)
        row_scale = peak / nx.ACT_MAX
        top = row_scale.max(initial=0.0)
        exp = 0 if top == 0 else math.ceil(math.log2(top)) - nx.SCALE_BITS
        rows = np.floor(row_scale * 2.0 ** -exp + 0.5)
        while rows.max(initial=0) >= 1 << nx.SCALE_BITS:
            exp += 1
            rows = np.floor(row_scale * 2.0 ** -exp + 0.5)
        return cls(codes.astype(np.int64), rows.astype(np.int64), exp)


@dataclasses.dataclass(frozen=True)
class IntLinear:
    codes: np.ndarray   # ternary [out, in]
    gamma: tuple        # scale: W ≈ codes * gamma


@dataclasses.dataclass(frozen=True)
class IntLayer:
    q_proj: IntLinear
    k_proj: IntLinear
    v_proj: IntLinear
    o_proj: IntLinear
    gate_proj: IntLinear
    up_proj: IntLinear
    down_proj: IntLinear
    input_layernorm: Gain
    post_attention_layernorm: Gain
    attn_sub_norm: Gain
    ffn_sub_norm: Gain


# -- block functions (golden references for hw/) ------------------------------------------------

def ternary_matmul(codes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """acc = W x for ternary W [N, K] and int8 x [K, ...]; exact, in acc_bits(K) bits (§1)."""
    codes, x = np.asarray(codes, dtype=np.int64), np.asarray(x, dtype=np.int64)
    acc = codes @ x
    lim = 1 << (nx.acc_bits(codes.shape[1]) - 1)
    assert np.abs(acc).max(initial=0) < lim, "accumulator bound violated"
    return acc


def rms_quantize(x: np.ndarray, x_scale, gain: Gain, eps) -> tuple[np.ndarray, tuple]:
    """RMSNorm folded into the absmax quantizer (§2, §4).

    ``x`` is an integer vector whose real value is ``x * x_scale``. Returns the int8 codes of
    ``gain ⊙ x / rms(x)`` and the dequant scale D with ``real(W·codes) = acc * gamma * D``:
    D = max|g x| / (127 rms(x)); 1/rms(x) cancels inside the codes and survives only in D.
    """
    e, xn = nx.normalize(x)
    q, m = nx.absmax_quantize(xn * gain.values)
    if m == 0:
        return q, (np.int64(0), np.int64(0))
    square_sum = int((xn * xn).sum())
    mean_square = nx.scale_mul(nx.scale_mul(nx.scale_from_int(square_sum, 2 * e), gain.inv_len),
                               nx.scale_mul(x_scale, x_scale))
    inv_rms = nx.scale_rsqrt(nx.scale_add(mean_square, eps))
    peak = nx.scale_mul(nx.scale_from_int(m, e - gain.exp), x_scale)
    return q, nx.scale_mul(nx.scale_mul(peak, inv_rms), nx.INV_ACT_MAX)


def quantize_heads(acc: np.ndarray, acc_scale) -> tuple[np.ndarray, tuple]:
    """Per-head absmax int8 of acc [heads, d] (real value acc * acc_scale): codes and head scales."""
    codes, peaks = zip(*(nx.absmax_quantize(row) for row in acc))
    peak_scales = nx.scale_from_int(np.array(peaks, dtype=np.int64), 0)
    return np.stack(codes), nx.scale_mul(nx.scale_mul(peak_scales, acc_scale), nx.INV_ACT_MAX)


def attend(q: np.ndarray, q_scale, keys: np.ndarray, key_scales, values: np.ndarray,
           value_scales, score_coef) -> np.ndarray:
    """One head over the cache: int8 q [d], keys/values [T, d] with per-position scales (§6).

    Returns the head output in the residual format (Q15.16, saturated to int32): the sums of
    :func:`attend_sums` times their row scale.
    """
    out, row_scale = attend_sums(q, q_scale, keys, key_scales, values, value_scales, score_coef)
    return nx.saturate(nx.apply_scale(out, row_scale, nx.RES_FRAC), nx.RES_BITS)


def attend_sums(q: np.ndarray, q_scale, keys: np.ndarray, key_scales, values: np.ndarray,
                value_scales, score_coef) -> tuple[np.ndarray, tuple]:
    """``attend`` before its last step: the weighted value sums [d] and their row scale.

    Scores z_j = (q·k_j) * q_scale * k_scale_j * log2(e)/sqrt(d) in Q.8; softmax in base 2 with the
    exp2 table; the value sum uses each weight p_j * v_scale_j on the row's largest exponent; one
    reciprocal of sum(p) per row.
    """
    dots = keys @ q
    coef = nx.scale_mul(nx.scale_mul(key_scales, q_scale), score_coef)
    z = nx.apply_scale(dots, coef, nx.SCORE_FRAC)
    p = nx.exp2_neg(z.max() - z)
    weights = nx.scale_mul(nx.scale_from_int(p, -nx.EXP_FRAC), value_scales)
    live = weights[0] > 0
    top = int(weights[1][live].max())
    aligned = np.where(live, weights[0] >> np.clip(top - weights[1], 0, 62), 0)
    row_scale = nx.scale_mul((np.int64(1 << (nx.SCALE_BITS - 1)), np.int64(top - nx.SCALE_BITS + 1)),
                             nx.scale_recip(nx.scale_from_int(int(p.sum()), -nx.EXP_FRAC)))
    return aligned @ values, row_scale


def gated_activation(gate: np.ndarray, gate_scale, up: np.ndarray, up_scale,
                     kind: str) -> tuple[np.ndarray, tuple]:
    """act(gate) ⊙ up from accumulators (real = acc * scale); returns (integer vector, its scale) (§7).

    relu²: max(gate, 0)² and up are each normalized to 17 bits, then multiplied.
    silu: gate is brought to Q.10, SiLU by table, times up normalized to 17 bits.
    """
    e_up, up_n = nx.normalize(up)
    up_scale = nx.scale_mul(up_scale, nx.scale_from_int(1, e_up))
    if kind == "relu2":
        relu = np.maximum(gate, 0)
        e_sq, square = nx.normalize(relu * relu)
        act_scale = nx.scale_mul(nx.scale_mul(gate_scale, gate_scale), nx.scale_from_int(1, e_sq))
    else:
        square = nx.silu_q10(nx.apply_scale(gate, gate_scale, nx.SILU_FRAC))
        e_sq, square = nx.normalize(square)
        act_scale = nx.scale_from_int(1, e_sq - nx.SILU_FRAC)
    return square * up_n, nx.scale_mul(act_scale, up_scale)


def lm_head_logits(table: RowScaledInt8, q: np.ndarray) -> np.ndarray:
    """Integer logits L_v = (codes_v · q) * rows_v; real logit = L_v * 2^exp * D (§8)."""
    return (table.codes @ np.asarray(q, dtype=np.int64)) * table.rows


def sample(logits: np.ndarray, logit_scale, temperature_coef, top_k: int | None,
           state: int) -> tuple[int, int]:
    """Next token and the new generator state (§8).

    Greedy (``temperature_coef`` None): the first maximum of the integer logits. Otherwise
    z_v = L_v * logit_scale * log2(e)/T in Q.8, the top k kept (ties to the lower index),
    p = exp2 table of (max z - z), and the token is the first whose running sum of p exceeds
    (r * sum p) >> 32 for the next xorshift32 value r.
    """
    if temperature_coef is None:
        return int(np.argmax(logits)), state
    z = nx.apply_scale(logits, nx.scale_mul(logit_scale, temperature_coef), nx.SCORE_FRAC)
    order = np.argsort(-z, kind="stable")
    keep = order[:top_k] if top_k else order
    mask = np.zeros(z.shape, dtype=bool)
    mask[keep] = True
    p = np.where(mask, nx.exp2_neg(z.max() - np.where(mask, z, z.max())), 0)
    state = nx.xorshift32(state)
    threshold = (state * int(p.sum())) >> nx.XORSHIFT_BITS
    return int(np.argmax(np.cumsum(p) > threshold)), state


# -- the model ----------------------------------------------------------------------------------

class IntegerKVCache:
    """Per layer: int8 keys (after RoPE) and values [kv_heads, T, d] and their per-head scales [kv_heads, T]."""

    def __init__(self, layers: int):
        self.layers = [dict(k=[], ks=[], v=[], vs=[]) for _ in range(layers)]

    @property
    def length(self) -> int:
        return len(self.layers[0]["k"])

    def append(self, layer: int, k, k_scale, v, v_scale):
        entry = self.layers[layer]
        for name, value in (("k", k), ("ks", k_scale), ("v", v), ("vs", v_scale)):
            entry[name].append(value)

    def view(self, layer: int, head: int):
        """keys [T, d], key scales ([T], [T]), values [T, d], value scales for one kv head."""
        e = self.layers[layer]
        keys = np.stack([k[head] for k in e["k"]])
        values = np.stack([v[head] for v in e["v"]])
        ks = (np.array([s[0][head] for s in e["ks"]]), np.array([s[1][head] for s in e["ks"]]))
        vs = (np.array([s[0][head] for s in e["vs"]]), np.array([s[1][head] for s in e["vs"]]))
        return keys, ks, values, vs


class IntegerModel:
    """BitNet b1.58 in the integer arithmetic of docs/numerics.md, with the float model's API."""

    def __init__(self, weights: Weights):
        cfg = self.config = weights.config

        def linear(lin):
            return IntLinear(lin.codes.astype(np.int64), nx.scale_from_float(lin.gamma))

        self.layers = [IntLayer(**{field_name(n): linear(layer.linear(n)) for n in cfg.linear_shapes()},
                                **{field_name(n): Gain.from_float(layer.norm(n))
                                   for n in cfg.norm_shapes()})
                       for layer in weights.layers]
        self.embed = RowScaledInt8.from_float(weights.embed_tokens)
        self.lm_head = (self.embed if weights.lm_head is weights.embed_tokens
                        else RowScaledInt8.from_float(weights.lm_head))
        self.norm = Gain.from_float(weights.norm)
        self.eps = nx.scale_from_float(cfg.rms_norm_eps)
        self.rope_cos, self.rope_sin = nx.rope_int_tables(cfg.dim_per_head, cfg.rope_theta,
                                                          cfg.max_position_embeddings)
        self.score_coef = nx.scale_from_float(math.log2(math.e) / math.sqrt(cfg.dim_per_head))

    @classmethod
    def from_checkpoint(cls, path) -> "IntegerModel":
        return cls(load_weights(path))

    def new_cache(self) -> IntegerKVCache:
        return IntegerKVCache(self.config.num_hidden_layers)

    def embed_token(self, token: int) -> np.ndarray:
        """The residual stream's first value: int8 row times its row scale, in Q15.16."""
        row_scale = nx.scale_from_int(self.embed.rows[token], self.embed.exp)
        return nx.saturate(nx.apply_scale(self.embed.codes[token], row_scale, nx.RES_FRAC), nx.RES_BITS)

    def _attention(self, index: int, h: np.ndarray, position: int, cache: IntegerKVCache, trace):
        cfg, layer = self.config, self.layers[index]
        d, heads, kv_heads = cfg.dim_per_head, cfg.num_attention_heads, cfg.num_key_value_heads
        x, scale = rms_quantize(h, nx.RES_UNIT, layer.input_layernorm, self.eps)
        trace(index, "input_layernorm", codes=x, scale=scale)
        cos, sin = self.rope_cos[position], self.rope_sin[position]
        q_acc = nx.rope_rotate(ternary_matmul(layer.q_proj.codes, x).reshape(heads, d), cos, sin)
        k_acc = nx.rope_rotate(ternary_matmul(layer.k_proj.codes, x).reshape(kv_heads, d), cos, sin)
        v_acc = ternary_matmul(layer.v_proj.codes, x).reshape(kv_heads, d)
        q, q_scales = quantize_heads(q_acc, nx.scale_mul(scale, layer.q_proj.gamma))
        k, k_scales = quantize_heads(k_acc, nx.scale_mul(scale, layer.k_proj.gamma))
        v, v_scales = quantize_heads(v_acc, nx.scale_mul(scale, layer.v_proj.gamma))
        for name, codes, scales in (("q_proj", q, q_scales), ("k_proj", k, k_scales),
                                    ("v_proj", v, v_scales)):
            trace(index, name, head_codes=codes.ravel(), head_scales=scales)
        cache.append(index, k, k_scales, v, v_scales)
        group = heads // kv_heads
        views = [cache.view(index, g) for g in range(kv_heads)]
        out = np.concatenate([
            attend(q[hd], (q_scales[0][hd], q_scales[1][hd]), *views[hd // group], self.score_coef)
            for hd in range(heads)])
        x, scale = rms_quantize(out, nx.RES_UNIT, layer.attn_sub_norm, self.eps)
        trace(index, "attn_sub_norm", input=out, codes=x, scale=scale)
        acc = ternary_matmul(layer.o_proj.codes, x)
        return nx.apply_scale(acc, nx.scale_mul(scale, layer.o_proj.gamma), nx.RES_FRAC)

    def _mlp(self, index: int, h: np.ndarray, trace):
        layer = self.layers[index]
        x, scale = rms_quantize(h, nx.RES_UNIT, layer.post_attention_layernorm, self.eps)
        trace(index, "post_attention_layernorm", codes=x, scale=scale)
        gate = ternary_matmul(layer.gate_proj.codes, x)
        up = ternary_matmul(layer.up_proj.codes, x)
        hidden, hidden_scale = gated_activation(gate, nx.scale_mul(scale, layer.gate_proj.gamma),
                                                up, nx.scale_mul(scale, layer.up_proj.gamma),
                                                self.config.hidden_act)
        x, scale = rms_quantize(hidden, hidden_scale, layer.ffn_sub_norm, self.eps)
        trace(index, "ffn_sub_norm", input=hidden, codes=x, scale=scale)
        acc = ternary_matmul(layer.down_proj.codes, x)
        return nx.apply_scale(acc, nx.scale_mul(scale, layer.down_proj.gamma), nx.RES_FRAC)

    def step(self, token: int, cache: IntegerKVCache, trace=None) -> tuple[np.ndarray, tuple]:
        """One position: integer logits L [vocab] and the logit scale (real logits = L * scale).

        ``trace(layer, step, **values)``, if given, is called with the intermediate values of each
        step (named as in ``hw.sequencer.program``): the whole-engine tests compare them with the
        gateware's taps.
        """
        trace = trace or (lambda layer, step, **values: None)
        position = cache.length
        h = self.embed_token(token)
        trace(0, "embed", h=h)
        for i in range(len(self.layers)):
            h = nx.saturate(h + self._attention(i, h, position, cache, trace), nx.RES_BITS)
            trace(i, "o_proj", h=h)
            h = nx.saturate(h + self._mlp(i, h, trace), nx.RES_BITS)
            trace(i, "down_proj", h=h)
        x, scale = rms_quantize(h, nx.RES_UNIT, self.norm, self.eps)
        logits = lm_head_logits(self.lm_head, x)
        trace(0, "norm", codes=x, scale=scale, logits=logits)
        return logits, nx.scale_mul(scale, nx.scale_from_int(1, self.lm_head.exp))

    def forward(self, token_ids, cache: IntegerKVCache | None = None) -> np.ndarray:
        """Real-valued logits float32 [T, vocab] (converted from the integer logits at the end)."""
        ids = check_tokens(token_ids, self.config.vocab_size)
        cache = cache if cache is not None else self.new_cache()
        check_context(cache.length, len(ids), self.config.max_position_embeddings)
        rows = []
        for token in ids:
            logits, scale = self.step(int(token), cache)
            rows.append(logits * nx.scale_to_float(scale))
        return np.array(rows, dtype=np.float32).reshape(len(ids), self.config.vocab_size)

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 0.0, seed: int = 0,
                 top_k: int | None = None) -> list[int]:
        """New tokens: greedy at temperature 0, else xorshift32-seeded sampling as §8 defines."""
        ids = check_prompt(prompt_ids, max_new_tokens, self.config)
        coef = nx.sampling_coefficient(temperature)
        state = nx.xorshift_seed(seed)
        cache = self.new_cache()
        for token in ids:
            logits, scale = self.step(int(token), cache)
        new: list[int] = []
        for i in range(max_new_tokens):
            token, state = sample(logits, scale, coef, top_k, state)
            new.append(token)
            if i + 1 < max_new_tokens:
                logits, scale = self.step(token, cache)
        return new


def tiny_model(directory: Path, seed: int, **overrides):
    """A random IntegerModel small enough to simulate a whole engine quickly (checkpoint written
    under ``directory``); ``overrides`` change BitNetConfig fields."""
    fields = dict(vocab_size=11, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8,
                  tie_word_embeddings=True)
    fields.update(overrides)
    config = BitNetConfig(**fields)
    return IntegerModel(load_weights(random_checkpoint(Path(directory) / "model", config, seed=seed)))
