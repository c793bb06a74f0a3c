"""The float model against Hugging Face transformers' ``bitnet`` model on random configs.

Skipped cleanly where torch/transformers are absent; .ci/run installs them so CI runs these.
"""

import numpy as np
import pytest

from model import load_checkpoint, load_weights, random_checkpoint, save_checkpoint

from ..conftest import CONFIGS

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

pytestmark = pytest.mark.transformers


def hf_logits(directory, ids) -> np.ndarray:
    model = transformers.BitNetForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(np.asarray(ids))[None]).logits[0].numpy()


def first_rounding_tie(model, ids, monkeypatch) -> int:
    """The first position where some activation x*s lies within float32 round-off of k + 1/2.

    There torch and NumPy may round to different int8 codes (both round half to even, but their
    float32 sums of x*s differ in the last bit), and the flipped code reaches every later position
    through the KV cache. Before it the two implementations must agree to round-off.
    """
    from model import bitnet

    ties = []
    quantize = bitnet.quantize_activations

    def recording(x):
        peak = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(bitnet.ACT_FLOOR))
        v = x * (np.float32(bitnet.ACT_QMAX) / peak)
        near = np.abs(np.abs(v - np.floor(v)) - 0.5) < 4 * np.spacing(np.float32(128))
        ties.extend(np.nonzero(near.any(axis=-1))[0].tolist())
        return quantize(x)

    with monkeypatch.context() as m:
        m.setattr(bitnet, "quantize_activations", recording)
        model.forward(ids)
    return min(ties, default=len(ids))


def assert_same_logits(ours: np.ndarray, ref: np.ndarray, upto: int | None = None):
    """Equal to float32 round-off (summation order differs in norms, RoPE, softmax, LM head)."""
    ours, ref = ours[:upto], ref[:upto]
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= 2e-5 * max(scale, 1.0), np.abs(ours - ref).max()
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "master"])
def test_logits_match_transformers(name, packed, tmp_path, rng, monkeypatch):
    cfg = CONFIGS[name]
    random_checkpoint(tmp_path, cfg, seed=3, packed=packed)
    ids = rng.integers(0, cfg.vocab_size, cfg.max_position_embeddings)
    ours = load_checkpoint(tmp_path)
    tie = first_rounding_tie(ours, ids, monkeypatch)
    print(f"first activation rounding tie at position {tie} of {len(ids)}")
    assert tie >= len(ids) // 8, "ties this early would leave little to compare"
    assert_same_logits(ours.forward(ids), hf_logits(tmp_path, ids), upto=tie)


def test_greedy_generation_matches_transformers(checkpoints, rng):
    directory = checkpoints["gqa-relu2-untied"]
    cfg = CONFIGS["gqa-relu2-untied"]
    prompt = rng.integers(0, cfg.vocab_size, 5)
    model = transformers.BitNetForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    with torch.no_grad():
        out = model.generate(torch.tensor(prompt)[None], max_new_tokens=20, do_sample=False)
    assert load_checkpoint(directory).generate(prompt, 20) == out[0, len(prompt):].tolist()


def test_reads_what_transformers_writes(checkpoints, tmp_path, rng):
    """A checkpoint saved by transformers' save_pretrained loads here with the same logits."""
    directory = checkpoints["mha-silu-tied"]
    model = transformers.BitNetForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    model.save_pretrained(str(tmp_path))
    ids = rng.integers(0, CONFIGS["mha-silu-tied"].vocab_size, 30)
    assert_same_logits(load_checkpoint(tmp_path).forward(ids), hf_logits(directory, ids))


def test_export_of_master_checkpoint_loads_in_transformers(tmp_path, rng):
    """The writer turns a master-weight checkpoint into a packed one with the same model."""
    cfg = CONFIGS["gqa-relu2-untied"]
    random_checkpoint(tmp_path / "master", cfg, seed=5, packed=False)
    save_checkpoint(load_weights(tmp_path / "master"), tmp_path / "packed")
    ids = rng.integers(0, cfg.vocab_size, 24)
    assert_same_logits(load_checkpoint(tmp_path / "packed").forward(ids),
                       hf_logits(tmp_path / "master", ids))
