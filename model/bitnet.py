"""The float reference BitNet b1.58, in NumPy, with the semantics of transformers' ``bitnet`` model.

Read top to bottom: RMSNorm, BitLinear (int8 absmax activations × ternary weights), RoPE, attention
with GQA and a KV cache, the relu²/SiLU gated MLP with its sub-norm, the LM head. Every step follows
transformers/models/bitnet/modeling_bitnet.py and transformers/integrations/bitnet.py, computed in
float32 in the same order (docs/reference-model.md lists the correspondences).
"""

import numpy as np

from .checkpoint import TernaryLinear, Weights, load_weights
from .numerics import ACT_BITS

ACT_QMAX = (1 << (ACT_BITS - 1)) - 1    # int8 absmax: scale = 127 / max|x|
ACT_QMIN = -(1 << (ACT_BITS - 1))       # transformers clamps to [-128, 127]
ACT_FLOOR = 1e-5    # max|x| is clamped to at least this


def rms_norm(x: np.ndarray, gain: np.ndarray, eps: float) -> np.ndarray:
    """BitNetRMSNorm: ``gain * x * rsqrt(mean(x²) + eps)`` over the last axis, in float32."""
    variance = np.mean(np.square(x), axis=-1, keepdims=True, dtype=np.float32)
    return gain * (x * (np.float32(1.0) / np.sqrt(variance + np.float32(eps))))


def quantize_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BitLinear.activation_quant: per-token int8 codes (round half to even) and the scale 127/max|x|."""
    peak = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(ACT_FLOOR))
    scale = np.float32(ACT_QMAX) / peak
    codes = np.clip(np.round(x * scale), ACT_QMIN, ACT_QMAX)
    return codes.astype(np.int32), scale.astype(np.float32)


def bit_linear(x: np.ndarray, linear: TernaryLinear) -> np.ndarray:
    """BitLinear.forward: ``(codes @ x_q) / (act_scale * weight_scale)``; exact integer accumulation."""
    x_q, act_scale = quantize_activations(x)
    acc = x_q @ linear.codes.T.astype(np.int32)
    return (acc.astype(np.float32) / (act_scale * np.float32(linear.weight_scale))).astype(np.float32)


def rope_tables(head_dim: int, theta: float, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BitNetRotaryEmbedding (default rope): cos/sin [T, head_dim] for ``rotate_half`` pairing."""
    exponent = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inv_freq = np.float32(1.0) / np.power(np.float32(theta), exponent, dtype=np.float32)
    freqs = positions.astype(np.float32)[:, None] * inv_freq[None, :]
    angles = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``x*cos + rotate_half(x)*sin`` for x [T, heads, head_dim]; rotate_half(x) = [-x2, x1]."""
    half = x.shape[-1] // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def activation(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "relu2":
        return np.square(np.maximum(x, np.float32(0)))
    return x / (np.float32(1) + np.exp(-x))  # silu


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_tokens(token_ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    bad = ids[(ids < 0) | (ids >= vocab_size)]
    if bad.size:
        raise ValueError(f"token id {int(bad[0])} is outside the vocabulary [0, {vocab_size})")
    return ids


def check_context(cached: int, new: int, limit: int):
    if cached + new > limit:
        raise ValueError(f"{cached} cached + {new} new positions exceed max_position_embeddings "
                         f"({limit})")


def check_prompt(prompt_ids, max_new_tokens: int, config) -> np.ndarray:
    """A generate() prompt: valid ids, not empty, and room for the new tokens in the context."""
    ids = check_tokens(prompt_ids, config.vocab_size)
    if len(ids) == 0:
        raise ValueError("generate needs a prompt of at least one token")
    check_context(0, len(ids) + max_new_tokens - 1, config.max_position_embeddings)
    return ids


class KVCache:
    """Per layer, keys (after RoPE) and values [kv_heads, positions, head_dim] of the tokens seen."""

    def __init__(self, layers: int):
        self.keys: list[np.ndarray | None] = [None] * layers
        self.values: list[np.ndarray | None] = [None] * layers

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[1]

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = np.concatenate([self.keys[layer], k], axis=1)
            self.values[layer] = np.concatenate([self.values[layer], v], axis=1)
        return self.keys[layer], self.values[layer]


def sample_float(logits: np.ndarray, temperature: float, top_k: int | None,
                 rng: np.random.Generator) -> int:
    """Greedy (first maximum) at temperature 0; otherwise softmax(logits / T) over the top k."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.size:
        cutoff = np.sort(z)[-top_k]
        z = np.where(z >= cutoff, z, -np.inf)
    return int(rng.choice(z.size, p=softmax(z)))


class BitNetModel:
    """A BitNet b1.58 causal LM on NumPy float32, the reference the integer model is judged against."""

    def __init__(self, weights: Weights):
        self.weights = weights
        self.config = weights.config

    @classmethod
    def from_checkpoint(cls, path) -> "BitNetModel":
        return cls(load_weights(path))

    def new_cache(self) -> KVCache:
        return KVCache(self.config.num_hidden_layers)

    def _attention(self, layer_index: int, x: np.ndarray, positions: np.ndarray,
                   cache: KVCache) -> np.ndarray:
        cfg, layer = self.config, self.weights.layers[layer_index]
        t, d = x.shape[0], cfg.dim_per_head
        q = bit_linear(x, layer.q_proj).reshape(t, cfg.num_attention_heads, d)
        k = bit_linear(x, layer.k_proj).reshape(t, cfg.num_key_value_heads, d)
        v = bit_linear(x, layer.v_proj).reshape(t, cfg.num_key_value_heads, d)
        cos, sin = rope_tables(d, cfg.rope_theta, positions)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        keys, values = cache.append(layer_index, k.transpose(1, 0, 2), v.transpose(1, 0, 2))
        group = cfg.num_attention_heads // cfg.num_key_value_heads
        keys, values = np.repeat(keys, group, axis=0), np.repeat(values, group, axis=0)
        scores = (q.transpose(1, 0, 2) @ keys.transpose(0, 2, 1)) * np.float32(d ** -0.5)
        seen = np.arange(keys.shape[1])
        scores = np.where(seen[None, None, :] <= positions[None, :, None], scores, -np.inf)
        out = (softmax(scores).astype(np.float32) @ values).transpose(1, 0, 2).reshape(t, -1)
        out = rms_norm(out, layer.attn_sub_norm, cfg.rms_norm_eps)
        return bit_linear(out, layer.o_proj)

    def _mlp(self, layer_index: int, x: np.ndarray) -> np.ndarray:
        cfg, layer = self.config, self.weights.layers[layer_index]
        hidden = activation(bit_linear(x, layer.gate_proj), cfg.hidden_act) * bit_linear(x, layer.up_proj)
        hidden = rms_norm(hidden, layer.ffn_sub_norm, cfg.rms_norm_eps)
        return bit_linear(hidden, layer.down_proj)

    def forward(self, token_ids, cache: KVCache | None = None) -> np.ndarray:
        """Logits float32 [T, vocab] for ``token_ids``, at positions following what ``cache`` holds."""
        cfg = self.config
        ids = check_tokens(token_ids, cfg.vocab_size)
        cache = cache if cache is not None else self.new_cache()
        check_context(cache.length, len(ids), cfg.max_position_embeddings)
        positions = np.arange(cache.length, cache.length + len(ids))
        h = self.weights.embed_tokens[ids].astype(np.float32)
        for i, layer in enumerate(self.weights.layers):
            h = h + self._attention(i, rms_norm(h, layer.input_layernorm, cfg.rms_norm_eps),
                                    positions, cache)
            h = h + self._mlp(i, rms_norm(h, layer.post_attention_layernorm, cfg.rms_norm_eps))
        h = rms_norm(h, self.weights.norm, cfg.rms_norm_eps)
        return (h @ self.weights.lm_head.T).astype(np.float32)

    def generate(self, prompt_ids, max_new_tokens: int, temperature: float = 0.0, seed: int = 0,
                 top_k: int | None = None) -> list[int]:
        """New tokens after ``prompt_ids``: greedy at temperature 0, else seeded sampling.

        The prompt is processed once; each new token then costs one position against the KV cache.
        """
        ids = check_prompt(prompt_ids, max_new_tokens, self.config)
        rng = np.random.default_rng(seed)
        cache = self.new_cache()
        logits = self.forward(ids, cache)[-1]
        new: list[int] = []
        for step in range(max_new_tokens):
            token = sample_float(logits, temperature, top_k, rng)
            new.append(token)
            if step + 1 < max_new_tokens:
                logits = self.forward([token], cache)[-1]
        return new


def load_checkpoint(path) -> BitNetModel:
    """A float :class:`BitNetModel` from a HF ``bitnet`` checkpoint directory, packed or not."""
    return BitNetModel.from_checkpoint(path)
