"""Integer model vs float model: how far the hardware arithmetic is from transformers' semantics."""

import numpy as np

from .bitnet import BitNetModel
from .checkpoint import Weights
from .integer import IntegerModel


def paired_logits(weights: Weights, token_ids) -> tuple[np.ndarray, np.ndarray]:
    """Float and integer logits [T, vocab] for ``token_ids``, cut into sequences of at most
    max_position_embeddings, each starting at position 0."""
    cfg = weights.config
    float_model, int_model = BitNetModel(weights), IntegerModel(weights)
    float_logits, int_logits = [], []
    for start in range(0, len(token_ids), cfg.max_position_embeddings):
        chunk = token_ids[start:start + cfg.max_position_embeddings]
        float_logits.append(float_model.forward(chunk))
        int_logits.append(int_model.forward(chunk))
    return np.concatenate(float_logits), np.concatenate(int_logits)


def compare_models(weights: Weights, positions: int = 256, seed: int = 0,
                   token_ids=None) -> dict:
    """Top-1 agreement and logit error of integer vs float over ``positions`` positions.

    The tokens are ``token_ids`` (e.g. validation text) or, without them, uniform random tokens
    from ``seed``.
    """
    if token_ids is None:
        token_ids = np.random.default_rng(seed).integers(0, weights.config.vocab_size, positions)
    token_ids = np.asarray(token_ids)[:positions]
    ref, got = paired_logits(weights, token_ids)
    err = np.abs(got - ref)
    return {
        "positions": len(token_ids),
        "top-1 agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
        "max |logit error|": float(err.max()),
        "mean |logit error|": float(err.mean()),
        "relative RMS logit error": float(np.sqrt((err ** 2).mean() / (ref ** 2).mean())),
        "float logit std": float(ref.std()),
    }
