"""Checkpoint I/O in the Hugging Face ``bitnet`` layout, packed or not.

Two forms exist, both read here (transformers/integrations/bitnet.py is the reference):

* **packed** (``quantization_mode: offline``, the microsoft/bitnet-b1.58-2B-4T layout): every
  BitLinear ``weight`` is uint8 ``[ceil(out/4), in]``; row ``r`` of block ``i`` (bits ``2i+1:2i``)
  holds the ternary code ``w+1`` of output row ``i*ceil(out/4) + r``. ``weight_scale`` is one float.
  ``linear_class: bitlinear`` computes ``y = acc / (act_scale * weight_scale)``;
  ``linear_class: autobitlinear`` computes ``y = acc / act_scale * weight_scale``.
* **master** (``quantization_mode: online``): float weights, ternarized on the fly by absmean:
  ``s = 1 / max(mean|W|, 1e-5)``, ``codes = clip(round(W*s), -1, 1)``, ``y = acc / (act_scale * s)``.

Either way the loaded form is :class:`TernaryLinear`: codes plus a divisor ``weight_scale`` with
BitLinear's meaning. The writer emits the packed ``bitlinear`` form, which transformers loads
(transformers' BitLinear needs ``out % 4 == 0``; other sizes are written with its own
``pack_weights`` padding rule and are read back here).

Safetensors files are parsed here (an 8-byte header length, a JSON header, raw little-endian data)
so that bfloat16 tensors, which NumPy lacks, load as float32; files are written with ``safetensors``.
"""

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np

from .config import BitNetConfig, CheckpointError
from .numerics import WEIGHT_CODE_BITS

CODES_PER_BYTE = 8 // WEIGHT_CODE_BITS
CODE_MASK = (1 << WEIGHT_CODE_BITS) - 1
ABSMEAN_FLOOR = 1e-5  # transformers WeightQuant: mean|W|.clamp_(min=1e-5)

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def field_name(hf_name: str) -> str:
    """The attribute a HF module name maps to: ``self_attn.q_proj`` -> ``q_proj``."""
    return hf_name.rsplit(".", 1)[-1]


@dataclasses.dataclass
class TernaryLinear:
    """One BitLinear: ``codes`` in {-1, 0, +1}, shape [out, in]; ``y = (codes @ x_q) / (s_x * weight_scale)``."""
    codes: np.ndarray
    weight_scale: float

    @property
    def gamma(self) -> float:
        """The absmean scale: ``W ≈ codes * gamma``."""
        return 1.0 / self.weight_scale


@dataclasses.dataclass
class Layer:
    q_proj: TernaryLinear
    k_proj: TernaryLinear
    v_proj: TernaryLinear
    o_proj: TernaryLinear
    gate_proj: TernaryLinear
    up_proj: TernaryLinear
    down_proj: TernaryLinear
    input_layernorm: np.ndarray
    post_attention_layernorm: np.ndarray
    attn_sub_norm: np.ndarray
    ffn_sub_norm: np.ndarray

    def linear(self, hf_name: str) -> TernaryLinear:
        return getattr(self, field_name(hf_name))

    def norm(self, hf_name: str) -> np.ndarray:
        return getattr(self, field_name(hf_name))


@dataclasses.dataclass
class Weights:
    """Everything a BitNet b1.58 model holds, in float32 (norms, embeddings, LM head) and ternary codes."""
    config: BitNetConfig
    embed_tokens: np.ndarray   # [vocab, hidden]
    layers: list[Layer]
    norm: np.ndarray           # [hidden]
    lm_head: np.ndarray        # [vocab, hidden]; the same array as embed_tokens when tied

    def ternary_linears(self):
        """Every BitLinear of every layer."""
        return (layer.linear(n) for layer in self.layers for n in self.config.linear_shapes())

    def ternary_zero_fraction(self) -> float:
        zeros = sum(int((lin.codes == 0).sum()) for lin in self.ternary_linears())
        return zeros / max(1, self.config.ternary_weights)


# -- ternary codes ------------------------------------------------------------------------------

def absmean_ternarize(weight: np.ndarray) -> TernaryLinear:
    """transformers' ``WeightQuant``: round-half-to-even of ``W / max(mean|W|, 1e-5)``, clipped to ±1."""
    w = np.asarray(weight, dtype=np.float32)
    scale = np.float32(1.0) / max(np.abs(w).mean(dtype=np.float32), np.float32(ABSMEAN_FLOOR))
    codes = np.clip(np.round(w * scale), -1, 1).astype(np.int8)
    return TernaryLinear(codes, float(scale))


def pack_ternary(codes: np.ndarray) -> np.ndarray:
    """Pack ternary codes [out, ...] into uint8 [ceil(out/4), ...] exactly as transformers' pack_weights."""
    codes = np.asarray(codes)
    if not np.isin(codes, (-1, 0, 1)).all():
        raise ValueError("pack_ternary: codes must all be -1, 0 or +1")
    rows = codes.shape[0]
    block = -(-rows // CODES_PER_BYTE)
    packed = np.zeros((block, *codes.shape[1:]), dtype=np.uint8)
    stored = (codes + 1).astype(np.uint8)
    for i in range(CODES_PER_BYTE):
        part = stored[i * block:(i + 1) * block]
        packed[:len(part)] |= part << (WEIGHT_CODE_BITS * i)
    return packed


def unpack_ternary(packed: np.ndarray, rows: int) -> np.ndarray:
    """Inverse of :func:`pack_ternary`: int8 codes [rows, ...]; a stored code of 3 is an error."""
    packed = np.asarray(packed, dtype=np.uint8)
    fields = [(packed >> (WEIGHT_CODE_BITS * i)) & CODE_MASK for i in range(CODES_PER_BYTE)]
    stored = np.concatenate(fields, axis=0)[:rows]
    if (stored == CODE_MASK).any():
        raise ValueError("packed ternary weight holds the invalid 2-bit code 3")
    return stored.astype(np.int8) - 1


# -- safetensors --------------------------------------------------------------------------------

def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one .safetensors file; bfloat16 becomes float32. Errors name the file."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"{path}: truncated safetensors file ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError(f"{path}: corrupt safetensors header (claims {header_len} bytes, "
                              f"file has {len(data) - 8})")
    try:
        header = json.loads(data[8:8 + header_len])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    body = memoryview(data)[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} has a malformed header entry") from None
        if not 0 <= begin <= end <= len(body):
            raise CheckpointError(f"{path}: tensor {name!r} data [{begin}:{end}] lies outside the "
                                  f"file's {len(body)} data bytes")
        raw = body[begin:end]
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BF16":
            itemsize = 2
            if len(raw) != count * itemsize:
                raise CheckpointError(f"{path}: tensor {name!r} has {len(raw)} bytes, "
                                      f"shape {shape} of BF16 needs {count * itemsize}")
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in _DTYPES:
            np_dtype = np.dtype(_DTYPES[dtype]).newbyteorder("<")
            if len(raw) != count * np_dtype.itemsize:
                raise CheckpointError(f"{path}: tensor {name!r} has {len(raw)} bytes, "
                                      f"shape {shape} of {dtype} needs {count * np_dtype.itemsize}")
            array = np.frombuffer(raw, dtype=np_dtype)
        else:
            raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        tensors[name] = array.reshape(shape).copy()
    return tensors


def read_tensors(directory: Path) -> dict[str, np.ndarray]:
    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory}: no *.safetensors file in the checkpoint directory")
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        tensors.update(read_safetensors(f))
    return tensors


# -- loading ------------------------------------------------------------------------------------

class _TensorSource:
    """Hands out tensors by name with shape checks; every error names the directory and tensor."""

    def __init__(self, directory: Path, tensors: dict[str, np.ndarray]):
        self.directory, self.tensors = directory, tensors

    def get(self, name: str, shape: tuple[int, ...], kind: str = "float") -> np.ndarray:
        if name not in self.tensors:
            raise CheckpointError(f"{self.directory}: tensor {name!r} is missing "
                                  f"(expected shape {list(shape)})")
        t = self.tensors[name]
        if tuple(t.shape) != tuple(shape):
            raise CheckpointError(f"{self.directory}: tensor {name!r} has shape {list(t.shape)}, "
                                  f"expected {list(shape)}")
        if kind == "float":
            if not np.issubdtype(t.dtype, np.floating):
                raise CheckpointError(f"{self.directory}: tensor {name!r} is {t.dtype}, "
                                      "expected a float type")
            t = t.astype(np.float32)
            if not np.isfinite(t).all():
                raise CheckpointError(f"{self.directory}: tensor {name!r} holds NaN or Inf")
        return t

    def linear(self, prefix: str, shape: tuple[int, int], config: BitNetConfig) -> TernaryLinear:
        out_features, in_features = shape
        if not config.packed:
            return absmean_ternarize(self.get(f"{prefix}.weight", shape))
        name = f"{prefix}.weight"
        t = self.tensors.get(name)
        packed_shape = (-(-out_features // CODES_PER_BYTE), in_features)
        if t is not None and t.dtype != np.uint8:
            # AutoBitLinear offline checkpoints may hold unpacked ternary values as floats.
            codes_f = self.get(name, shape)
            if not np.isin(codes_f, (-1, 0, 1)).all():
                raise CheckpointError(f"{self.directory}: tensor {name!r} is unpacked but not "
                                      "ternary (values other than -1, 0, +1)")
            codes = codes_f.astype(np.int8)
        else:
            try:
                codes = unpack_ternary(self.get(name, packed_shape, kind="packed"), out_features)
            except ValueError as e:
                raise CheckpointError(f"{self.directory}: tensor {name!r}: {e}") from None
        scale = self.get(f"{prefix}.weight_scale", (1,)).reshape(())
        if scale <= 0:
            raise CheckpointError(f"{self.directory}: tensor {prefix}.weight_scale must be > 0, "
                                  f"not {float(scale)}")
        if config.linear_class == "autobitlinear":
            scale = np.float32(1.0) / scale  # AutoBitLinear multiplies; keep BitLinear's divisor
        return TernaryLinear(codes, float(scale))


def _assemble(config: BitNetConfig, src: _TensorSource) -> Weights:
    h, v = config.hidden_size, config.vocab_size
    embed = src.get("model.embed_tokens.weight", (v, h))
    layers = []
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        linears = {field_name(n): src.linear(f"{p}.{n}", s, config)
                   for n, s in config.linear_shapes().items()}
        norms = {field_name(n): src.get(f"{p}.{n}.weight", (s,))
                 for n, s in config.norm_shapes().items()}
        layers.append(Layer(**linears, **norms))
    norm = src.get("model.norm.weight", (h,))
    lm_head = embed if config.tie_word_embeddings else src.get("lm_head.weight", (v, h))
    return Weights(config, embed, layers, norm, lm_head)


def load_weights(path) -> Weights:
    """Read a HF ``bitnet`` checkpoint directory (config.json + *.safetensors) into :class:`Weights`."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    config = BitNetConfig.from_file(directory / "config.json")
    return _assemble(config, _TensorSource(directory, read_tensors(directory)))


# -- writing ------------------------------------------------------------------------------------

def packed_tensors(weights: Weights) -> dict[str, np.ndarray]:
    """The HF tensors of the packed ``bitlinear`` layout (what :func:`save_checkpoint` writes)."""
    cfg = weights.config
    out = {"model.embed_tokens.weight": weights.embed_tokens.astype(np.float32),
           "model.norm.weight": weights.norm.astype(np.float32)}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = weights.lm_head.astype(np.float32)
    for i, layer in enumerate(weights.layers):
        p = f"model.layers.{i}"
        for name in cfg.linear_shapes():
            lin = layer.linear(name)
            out[f"{p}.{name}.weight"] = pack_ternary(lin.codes)
            out[f"{p}.{name}.weight_scale"] = np.array([lin.weight_scale], dtype=np.float32)
        for name in cfg.norm_shapes():
            out[f"{p}.{name}.weight"] = layer.norm(name).astype(np.float32)
    return out


def write_checkpoint(directory, config: BitNetConfig, tensors: dict[str, np.ndarray],
                     tokenizer_json: str | None = None) -> Path:
    """Write config.json, model.safetensors and (optionally) tokenizer.json into ``directory``."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
              str(directory / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer_json is not None:
        (directory / "tokenizer.json").write_text(tokenizer_json)
    return directory


def save_checkpoint(weights: Weights, directory, tokenizer_json: str | None = None) -> Path:
    """Export any model to the packed HF layout (``bitlinear``, offline) that transformers loads."""
    config = weights.config.replace(linear_class="bitlinear", quantization_mode="offline")
    return write_checkpoint(directory, config, packed_tensors(weights), tokenizer_json)


def random_master_tensors(config: BitNetConfig, seed: int) -> dict[str, np.ndarray]:
    """Float master weights of a random model in HF naming (a stand-in until a trained model exists).

    Norm gains are drawn around 1 and embeddings with unit-scale rows so that activations are of
    the order real BitNet models see; the seed fixes everything.
    """
    rng = np.random.default_rng(seed)
    h, v = config.hidden_size, config.vocab_size

    def normal(*shape, std=1.0):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    out = {"model.embed_tokens.weight": normal(v, h),
           "model.norm.weight": (1 + normal(h, std=0.2))}
    if not config.tie_word_embeddings:
        out["lm_head.weight"] = normal(v, h, std=h ** -0.5)
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        for name, (n_out, n_in) in config.linear_shapes().items():
            out[f"{p}.{name}.weight"] = normal(n_out, n_in, std=n_in ** -0.5)
        for name, n in config.norm_shapes().items():
            out[f"{p}.{name}.weight"] = 1 + normal(n, std=0.2)
    return out


def pack_master_checkpoint(directory, config: BitNetConfig, master: dict[str, np.ndarray],
                           tokenizer_json: str | None = None) -> Path:
    """Ternarize float master weights exactly as loading them online would, then write them packed."""
    online = config.replace(linear_class="autobitlinear", quantization_mode="online")
    return save_checkpoint(_assemble(online, _TensorSource(Path(directory), master)), directory,
                           tokenizer_json)


def random_checkpoint(directory, config: BitNetConfig, seed: int = 0, packed: bool = True,
                      tokenizer_json: str | None = None) -> Path:
    """Write a random model: packed (ternarized offline) or as float master weights (online)."""
    master = random_master_tensors(config, seed)
    if not packed:
        cfg = config.replace(linear_class="autobitlinear", quantization_mode="online")
        return write_checkpoint(directory, cfg, master, tokenizer_json)
    return pack_master_checkpoint(directory, config, master, tokenizer_json)
