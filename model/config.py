"""BitNet b1.58 model configuration, read from and written to a Hugging Face ``config.json``.

Field names and defaults follow transformers' ``BitNetConfig``
(transformers/models/bitnet/configuration_bitnet.py); ``rope_theta`` is accepted both at top level
(older configs) and inside ``rope_parameters`` (transformers 5).
"""

import dataclasses
import json
from pathlib import Path

ACTIVATIONS = ("relu2", "silu")
LINEAR_CLASSES = ("bitlinear", "autobitlinear")
QUANTIZATION_MODES = ("offline", "online")


class CheckpointError(ValueError):
    """A checkpoint (config or tensors) is missing, malformed, or inconsistent."""


@dataclasses.dataclass(frozen=True)
class BitNetConfig:
    vocab_size: int = 128256
    hidden_size: int = 2560
    intermediate_size: int = 6912
    num_hidden_layers: int = 30
    num_attention_heads: int = 20
    num_key_value_heads: int = 5
    head_dim: int | None = None
    hidden_act: str = "relu2"
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    tie_word_embeddings: bool = False
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    # quantization_config, as transformers' BitNetQuantConfig
    linear_class: str = "bitlinear"
    quantization_mode: str = "offline"

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CheckpointError(f"config: {name} must be a positive integer, not {value!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise CheckpointError(f"config: hidden_act {self.hidden_act!r} is not supported; "
                                  f"expected one of {', '.join(ACTIVATIONS)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise CheckpointError(
                f"config: num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise CheckpointError(
                f"config: hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); give head_dim explicitly")
        if self.num_attention_heads * self.dim_per_head != self.hidden_size:
            raise CheckpointError(
                f"config: num_attention_heads * head_dim ({self.num_attention_heads} * "
                f"{self.dim_per_head}) must equal hidden_size ({self.hidden_size}): BitNet's "
                "attn_sub_norm normalizes the concatenated heads with hidden_size gains")
        if self.dim_per_head % 2:
            raise CheckpointError(f"config: head_dim must be even for RoPE, not {self.dim_per_head}")
        if self.linear_class not in LINEAR_CLASSES:
            raise CheckpointError(f"config: quantization_config.linear_class {self.linear_class!r} "
                                  f"is not one of {', '.join(LINEAR_CLASSES)}")
        if self.quantization_mode not in QUANTIZATION_MODES:
            raise CheckpointError(f"config: quantization_config.quantization_mode "
                                  f"{self.quantization_mode!r} is not one of "
                                  f"{', '.join(QUANTIZATION_MODES)}")
        if self.rms_norm_eps <= 0 or self.rope_theta <= 0:
            raise CheckpointError("config: rms_norm_eps and rope_theta must be positive")

    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @property
    def packed(self) -> bool:
        """Checkpoint weights are stored packed (offline mode), not as float master weights."""
        return self.quantization_mode == "offline"

    @property
    def ternary_weights(self) -> int:
        """Ternary weights of the whole model: every BitLinear of every layer (one position reads
        each once)."""
        return self.num_hidden_layers * sum(o * i for o, i in self.linear_shapes().values())

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(out_features, in_features) of every BitLinear in one decoder layer, by HF name."""
        d, h = self.dim_per_head, self.hidden_size
        return {
            "self_attn.q_proj": (self.num_attention_heads * d, h),
            "self_attn.k_proj": (self.num_key_value_heads * d, h),
            "self_attn.v_proj": (self.num_key_value_heads * d, h),
            "self_attn.o_proj": (h, self.num_attention_heads * d),
            "mlp.gate_proj": (self.intermediate_size, h),
            "mlp.up_proj": (self.intermediate_size, h),
            "mlp.down_proj": (h, self.intermediate_size),
        }

    def norm_shapes(self) -> dict[str, int]:
        """Length of every RMSNorm gain vector in one decoder layer, by HF name."""
        return {
            "input_layernorm": self.hidden_size,
            "post_attention_layernorm": self.hidden_size,
            "self_attn.attn_sub_norm": self.hidden_size,
            "mlp.ffn_sub_norm": self.intermediate_size,
        }

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config.json") -> "BitNetConfig":
        if raw.get("model_type", "bitnet") != "bitnet":
            raise CheckpointError(f"{source}: model_type is {raw.get('model_type')!r}, expected 'bitnet'")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in known}
        rope = raw.get("rope_parameters") or {}
        if rope.get("rope_type", "default") != "default":
            raise CheckpointError(f"{source}: rope_type {rope['rope_type']!r} is not supported "
                                  "(only the default RoPE of BitNet b1.58)")
        if "rope_theta" in rope:
            kwargs["rope_theta"] = rope["rope_theta"]
        if kwargs.get("num_key_value_heads") is None:
            kwargs["num_key_value_heads"] = raw.get("num_attention_heads",
                                                    cls.num_attention_heads)
        if isinstance(kwargs.get("eos_token_id"), list):
            kwargs["eos_token_id"] = kwargs["eos_token_id"][0]
        quant = raw.get("quantization_config")
        if quant is not None:
            if quant.get("quant_method", "bitnet") != "bitnet":
                raise CheckpointError(f"{source}: quantization_config.quant_method is "
                                      f"{quant.get('quant_method')!r}, expected 'bitnet'")
            if quant.get("use_rms_norm", False):
                raise CheckpointError(f"{source}: quantization_config.use_rms_norm=true is not "
                                      "supported (BitNet b1.58 checkpoints use explicit sub-norms)")
            skip = quant.get("modules_to_not_convert")
            if skip is not None and "lm_head" not in skip:
                raise CheckpointError(f"{source}: quantization_config.modules_to_not_convert must "
                                      "leave lm_head unquantized (omit it or include 'lm_head')")
            kwargs["linear_class"] = quant.get("linear_class", "bitlinear")
            kwargs["quantization_mode"] = quant.get("quantization_mode", "offline")
        else:
            # No quantization_config: float master weights, ternarized on the fly.
            kwargs["linear_class"] = "autobitlinear"
            kwargs["quantization_mode"] = "online"
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise CheckpointError(f"{source}: {e}") from None

    @classmethod
    def from_file(cls, path: Path) -> "BitNetConfig":
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file; a checkpoint directory needs "
                                  "config.json") from None
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict:
        """The config.json transformers' BitNetForCausalLM loads."""
        out = {
            "architectures": ["BitNetForCausalLM"],
            "model_type": "bitnet",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": False,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "torch_dtype": "float32",
            "quantization_config": {
                "quant_method": "bitnet",
                "linear_class": self.linear_class,
                "quantization_mode": self.quantization_mode,
            },
        }
        if self.head_dim is not None:
            out["head_dim"] = self.head_dim
        return out

    def replace(self, **changes) -> "BitNetConfig":
        return dataclasses.replace(self, **changes)
