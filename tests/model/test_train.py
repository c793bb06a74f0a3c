"""QAT training (torch): the network is the NumPy model's network, runs are deterministic and
resumable, the export loads; and the shipped models are what docs/models.md says they are."""

import hashlib

import numpy as np
import pytest

from model import paths
from model import load_weights
from model.bitnet import BitNetModel
from model.memory import BOARDS, memory_budget
from model.tokenizer import SHAKESPEARE_ALPHABET, load_tokenizer

torch = pytest.importorskip("torch")
from model import train as training  # noqa: E402  (needs torch only when called)

TINY = training.TrainSettings(steps=12, batch=4, warmup=2, eval_every=6, eval_batches=1)


@pytest.fixture
def tiny_settings(monkeypatch):
    monkeypatch.setitem(training.SETTINGS, "small", TINY)


def run(tmp_path, label, **kwargs):
    return training.train("small", out=tmp_path / label, work=tmp_path / f"work-{label}",
                          threads=1, log=lambda *_: None, **kwargs)


def test_data_split_and_alphabet():
    text = training.DATA.read_bytes()
    assert hashlib.sha256(text).hexdigest().startswith("86c4e6aa")
    train_ids, val_ids = training.load_splits()
    assert (len(train_ids), len(val_ids)) == (1_003_854, 111_540)
    assert sorted(set(text.decode())) == list(SHAKESPEARE_ALPHABET)
    with pytest.raises(ValueError, match="outside the alphabet"):
        training.encode_text("ROMEO: é")


def test_torch_network_is_the_numpy_model(tmp_path, tiny_settings):
    """After a few steps, the exported checkpoint's NumPy float logits equal the torch network's."""
    run(tmp_path, "a")
    weights = load_weights(tmp_path / "a")
    config = training.MODELS["small"]
    assert weights.config.replace(linear_class="bitlinear", quantization_mode="offline") == \
        config.replace(linear_class="bitlinear", quantization_mode="offline")
    state = torch.load(tmp_path / "work-a" / "state.pt", weights_only=False)
    net = training.build_network(config)
    net.load_state_dict(state["net"])
    net.eval()
    window = training.validation_windows(training.load_splits()[1], config.max_position_embeddings, 1)[0]
    with torch.no_grad():
        ref = net(torch.from_numpy(window[None, :-1]))[0].numpy()
    got = BitNetModel(weights).forward(window[:-1])
    # Equal up to float32 order of operations (an activation exactly at a rounding tie may differ).
    assert (ref.argmax(-1) == got.argmax(-1)).mean() >= 0.99
    assert np.abs(got - ref).max() <= 2e-3 * np.abs(ref).max()


def test_deterministic_and_resumable(tmp_path, tiny_settings):
    straight = run(tmp_path, "straight")

    class Interrupt(Exception):
        pass

    def stop_after_8(step, total, loss):
        if step == 8:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path, "resumed", progress=stop_after_8)
    resumed = run(tmp_path, "resumed", resume=True)   # continues from the state saved at step 6
    assert resumed["history"] == straight["history"]
    assert (tmp_path / "straight" / "model.safetensors").read_bytes() == \
        (tmp_path / "resumed" / "model.safetensors").read_bytes()


def test_float_baseline_writes_metrics_only(tmp_path, tiny_settings):
    metrics = run(tmp_path, "fp", precision="float")
    assert (tmp_path / "fp" / "baseline.json").is_file()
    assert not (tmp_path / "fp" / "model.safetensors").exists()
    assert metrics["precision"] == "float" and len(metrics["history"]) == 2
    with pytest.raises(ValueError, match="precision"):
        training.build_network(training.MODELS["small"], precision="int4")


def test_model_sizes_fit_their_boards():
    """The shipped sizes: ulx3s 0.5-1.5 M ternary weights on the 85F; small 100-250 K on both
    small boards; contexts >= 128; KV cache, embeddings and LM head included."""
    ulx3s, small = training.MODELS["ulx3s"], training.MODELS["small"]
    assert 500_000 <= ulx3s.ternary_weights <= 1_500_000
    assert 100_000 <= small.ternary_weights <= 250_000
    assert min(ulx3s.max_position_embeddings, small.max_position_embeddings) >= 128
    assert memory_budget(ulx3s)["total"] <= BOARDS["ulx3s"][1].onchip_bits
    for board in ("icebreaker", "tangnano9k"):
        assert memory_budget(small)["total"] <= BOARDS[board][1].onchip_bits


@pytest.mark.parametrize("name", list(training.MODELS))
def test_shipped_model(name):
    directory = paths.MODELS / name
    weights = load_weights(directory)
    assert weights.config.replace(linear_class="autobitlinear", quantization_mode="online") == \
        training.MODELS[name].replace(linear_class="autobitlinear", quantization_mode="online")
    tokenizer = load_tokenizer(directory)
    assert tokenizer.encode("ROMEO:").ids == list(training.encode_text("ROMEO:"))
    # Trained, not random: the validation loss is far below uniform guessing (ln 65 = 4.17 nats).
    window = training.validation_windows(training.load_splits()[1], 64, 1)[0]
    logits = BitNetModel(weights).forward(window[:-1]).astype(np.float64)
    logits -= logits.max(-1, keepdims=True)
    nll = -(logits[np.arange(64), window[1:]] - np.log(np.exp(logits).sum(-1))).mean()
    assert nll < 2.5, f"validation loss {nll:.2f} nats/char"
