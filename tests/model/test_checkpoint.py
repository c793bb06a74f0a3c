"""Checkpoint I/O: packing, both HF forms, the writer, and errors that name what is wrong."""

import json
import struct

import numpy as np
import pytest

from model import CheckpointError, load_weights, random_checkpoint, save_checkpoint
from model.checkpoint import (
    absmean_ternarize,
    pack_ternary,
    read_safetensors,
    read_tensors,
    unpack_ternary,
    write_checkpoint,
)
from model.config import BitNetConfig

from ..conftest import CONFIGS


def test_unpack_matches_transformers_docstring_example():
    packed = np.array([[0b10100001, 0b00011000], [0b10010000, 0b00001010]], dtype=np.uint8)
    expected = [[0, -1], [-1, 1], [-1, 1], [-1, 1], [1, 0], [0, -1], [1, -1], [1, -1]]
    assert unpack_ternary(packed, 8).tolist() == expected
    assert (pack_ternary(np.array(expected)) == packed).all()


@pytest.mark.parametrize("rows", [1, 4, 5, 6, 7, 13])
def test_pack_round_trip(rows, rng):
    codes = rng.integers(-1, 2, (rows, 9))
    packed = pack_ternary(codes)
    assert packed.shape == (-(-rows // 4), 9) and packed.dtype == np.uint8
    assert (unpack_ternary(packed, rows) == codes).all()


def test_pack_rejects_non_ternary_and_unpack_rejects_code_3():
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        pack_ternary(np.array([[2]]))
    with pytest.raises(ValueError, match="invalid 2-bit code 3"):
        unpack_ternary(np.array([[3]], dtype=np.uint8), 1)


def test_absmean_ternarize(rng):
    w = rng.standard_normal((16, 24)).astype(np.float32)
    lin = absmean_ternarize(w)
    gamma = np.abs(w).mean()
    assert np.isclose(lin.gamma, gamma, rtol=1e-6)
    assert (lin.codes == np.clip(np.round(w / gamma), -1, 1)).all()
    zero = absmean_ternarize(np.zeros((4, 4), dtype=np.float32))
    assert not zero.codes.any() and zero.weight_scale == pytest.approx(1e5)


def assert_same_weights(a, b):
    same_form = dict(linear_class="bitlinear", quantization_mode="offline")
    assert a.config.replace(**same_form) == b.config.replace(**same_form)
    for la, lb in zip(a.layers, b.layers):
        for name in a.config.linear_shapes():
            assert (la.linear(name).codes == lb.linear(name).codes).all()
            assert la.linear(name).weight_scale == pytest.approx(lb.linear(name).weight_scale, rel=1e-6)
        for name in a.config.norm_shapes():
            assert (la.norm(name) == lb.norm(name)).all()
    assert (a.embed_tokens == b.embed_tokens).all() and (a.lm_head == b.lm_head).all()


@pytest.mark.parametrize("name", CONFIGS)
def test_save_load_round_trip(name, checkpoints, tmp_path):
    weights = load_weights(checkpoints[name])
    save_checkpoint(weights, tmp_path)
    again = load_weights(tmp_path)
    assert_same_weights(weights, again)
    assert again.config.tie_word_embeddings == (again.lm_head is again.embed_tokens)


def test_master_and_packed_forms_load_alike(tmp_path):
    cfg = CONFIGS["gqa-relu2-untied"]
    random_checkpoint(tmp_path / "master", cfg, seed=2, packed=False)
    random_checkpoint(tmp_path / "packed", cfg, seed=2, packed=True)
    master, packed = load_weights(tmp_path / "master"), load_weights(tmp_path / "packed")
    assert master.config.quantization_mode == "online" and packed.config.packed
    assert "uint8" in {str(t.dtype) for t in read_tensors(tmp_path / "packed").values()}
    assert_same_weights(master, packed)


def test_odd_output_rows_use_the_transformers_padding_rule(tmp_path):
    cfg = BitNetConfig(vocab_size=11, hidden_size=6, intermediate_size=10, num_hidden_layers=1,
                       num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=8)
    random_checkpoint(tmp_path, cfg, seed=0)
    tensors = read_tensors(tmp_path)
    assert tensors["model.layers.0.self_attn.k_proj.weight"].shape == (2, 6)   # ceil(6/4)
    assert tensors["model.layers.0.mlp.gate_proj.weight"].shape == (3, 6)      # ceil(10/4)
    assert load_weights(tmp_path).layers[0].gate_proj.codes.shape == (10, 6)


def test_autobitlinear_offline_multiplies_by_weight_scale(checkpoints, tmp_path):
    """AutoBitLinear computes acc/s_x * weight_scale where BitLinear divides: both load alike."""
    src = checkpoints["gqa-relu2-untied"]
    tensors = read_tensors(src)
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"]["linear_class"] = "autobitlinear"
    for key in tensors:
        if key.endswith("weight_scale"):
            tensors[key] = (1 / tensors[key]).astype(np.float32)
    write_checkpoint(tmp_path, BitNetConfig.from_dict(config), tensors)
    a, b = load_weights(src), load_weights(tmp_path)
    assert_same_weights(a, b)


def test_bfloat16_tensors_load_as_float32(tmp_path):
    values = np.array([1.0, -2.5, 0.15625, 3e38], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [4], "data_offsets": [0, len(bf16)]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16)
    got = read_safetensors(path)["x"]
    assert got.dtype == np.float32
    assert (got == (values.view(np.uint32) & 0xFFFF0000).view(np.float32)).all()


# -- bad input: an error that names the file or tensor and what was expected ---------------------

def broken_copy(src, dst, edit_tensors=None, edit_config=None):
    tensors = read_tensors(src)
    config = json.loads((src / "config.json").read_text())
    if edit_tensors:
        edit_tensors(tensors)
    if edit_config:
        edit_config(config)
    dst.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file
    save_file(tensors, str(dst / "model.safetensors"))
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_missing_tensor(checkpoints, tmp_path):
    name = "model.layers.1.mlp.down_proj.weight_scale"
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path, lambda t: t.pop(name))
    with pytest.raises(CheckpointError, match=f"tensor '{name}' is missing \\(expected shape \\[1\\]\\)"):
        load_weights(d)


def test_wrong_shape(checkpoints, tmp_path):
    name = "model.layers.0.self_attn.q_proj.weight"

    def shrink(t):
        t[name] = t[name][:, :-1].copy()
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path, shrink)
    with pytest.raises(CheckpointError, match=f"'{name}' has shape \\[12, 47\\], expected \\[12, 48\\]"):
        load_weights(d)


def test_vocab_mismatch(checkpoints, tmp_path):
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path,
                    edit_config=lambda c: c.update(vocab_size=70))
    with pytest.raises(CheckpointError, match="'model.embed_tokens.weight' has shape \\[67, 48\\], "
                                              "expected \\[70, 48\\]"):
        load_weights(d)


def test_unknown_activation(checkpoints, tmp_path):
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path,
                    edit_config=lambda c: c.update(hidden_act="gelu"))
    with pytest.raises(CheckpointError, match="hidden_act 'gelu' is not supported; expected one of relu2, silu"):
        load_weights(d)


def test_invalid_packed_code(checkpoints, tmp_path):
    name = "model.layers.0.mlp.up_proj.weight"

    def poison(t):
        t[name][0, 0] = 0xFF
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path, poison)
    with pytest.raises(CheckpointError, match=f"'{name}': packed ternary weight holds the invalid"):
        load_weights(d)


def test_nan_in_float_tensor(checkpoints, tmp_path):
    def poison(t):
        t["model.norm.weight"][3] = np.nan
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path, poison)
    with pytest.raises(CheckpointError, match="'model.norm.weight' holds NaN or Inf"):
        load_weights(d)


def test_corrupt_safetensors(checkpoints, tmp_path):
    d = broken_copy(checkpoints["gqa-relu2-untied"], tmp_path)
    path = d / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors: tensor '.*' data .* lies outside"):
        load_weights(d)
    path.write_bytes(b"\xff" * 16)
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt safetensors header"):
        load_weights(d)


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_weights(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json: no such file"):
        load_weights(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(CONFIGS["gqa-relu2-untied"].to_dict()))
    with pytest.raises(CheckpointError, match="no \\*.safetensors file"):
        load_weights(tmp_path)


def test_config_validation():
    base = CONFIGS["gqa-relu2-untied"].to_dict()
    with pytest.raises(CheckpointError, match="multiple of num_key_value_heads"):
        BitNetConfig.from_dict({**base, "num_key_value_heads": 3})
    with pytest.raises(CheckpointError, match="model_type is 'llama', expected 'bitnet'"):
        BitNetConfig.from_dict({**base, "model_type": "llama"})
    with pytest.raises(CheckpointError, match="use_rms_norm=true is not supported"):
        BitNetConfig.from_dict({**base, "quantization_config": {"use_rms_norm": True}})
    cfg = BitNetConfig.from_dict({**base, "rope_theta": None,
                                  "rope_parameters": {"rope_type": "default", "rope_theta": 1234.0}})
    assert cfg.rope_theta == 1234.0
    no_quant = {k: v for k, v in base.items() if k != "quantization_config"}
    assert BitNetConfig.from_dict(no_quant).quantization_mode == "online"
