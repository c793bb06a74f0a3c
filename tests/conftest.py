import numpy as np
import pytest

from model import BitNetConfig, random_checkpoint

# Small configs with odd sizes: vocab not a power of two, GQA and MHA, tied and untied, both
# activations, an explicit head_dim. Linear output sizes stay multiples of 4 where transformers'
# packed BitLinear must load them (it allocates out_features // 4 packed rows).
CONFIGS = {
    "gqa-relu2-untied": BitNetConfig(vocab_size=67, hidden_size=48, intermediate_size=132,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, max_position_embeddings=64,
                                     rope_theta=10000.0, hidden_act="relu2"),
    "mha-silu-tied": BitNetConfig(vocab_size=53, hidden_size=36, intermediate_size=100,
                                  num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=3,
                                  max_position_embeddings=48, rope_theta=500000.0,
                                  hidden_act="silu", tie_word_embeddings=True),
    "mqa-headdim-relu2": BitNetConfig(vocab_size=41, hidden_size=48, intermediate_size=76,
                                      num_hidden_layers=1, num_attention_heads=4,
                                      num_key_value_heads=1, head_dim=12,
                                      max_position_embeddings=40, rope_theta=10000.0),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Packed random checkpoints, one per CONFIGS entry, written once per session."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: random_checkpoint(root / name, cfg, seed=7) for name, cfg in CONFIGS.items()}


@pytest.fixture
def rng(request):
    """A seeded generator; the seed is printed so a failure can be replayed."""
    seed = 1234
    print(f"{request.node.name}: seed {seed}")
    return np.random.default_rng(seed)
