"""Quantization-aware training of the shipped tiny BitNet b1.58 models on TinyShakespeare (torch, CPU).

The network is transformers' ``bitnet`` architecture written out in torch (RMSNorm, GQA attention
with RoPE and ``attn_sub_norm``, relu² gated MLP with ``ffn_sub_norm``, untied or tied LM head), and
every BitLinear trains the BitNet b1.58 way: in the forward pass the weights are absmean-ternarized
(one scale per matrix) and the activations absmax-quantized to int8 per token, exactly as
transformers' online ``AutoBitLinear`` and model/bitnet.py compute them; the backward pass goes
straight through both roundings (the straight-through estimator). Float master weights are kept
and exported once at the end, ternarized, in the packed HF layout (model/checkpoint.py).

``precision="float"`` trains the same network with plain linear layers: the full-precision
baseline of the BitNet paper's comparisons (metrics only; it is not a BitNet checkpoint).

Training is deterministic for a seed and a thread count: batches come from a seeded NumPy
generator, initial weights from a seeded torch generator. A state file (weights, optimizer, step,
generator states) is written at every evaluation, so an interrupted run resumes where it stopped.
"""

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from .bitnet import ACT_FLOOR, ACT_QMAX, ACT_QMIN
from .checkpoint import ABSMEAN_FLOOR, pack_master_checkpoint
from . import paths
from .config import BitNetConfig
from .tokenizer import SHAKESPEARE_ALPHABET, char_tokenizer_json

DATA = paths.DATA / "tinyshakespeare.txt"
VALIDATION_FRACTION = 0.1    # the last 10% of the text (111,540 characters) is the validation split


def _config(**fields) -> BitNetConfig:
    return BitNetConfig(vocab_size=len(SHAKESPEARE_ALPHABET), hidden_act="relu2", rope_theta=10000.0,
                        **fields)


# Sized with model/memory.py against the boards' on-chip memory (docs/models.md has the tables).
MODELS = {
    # ULX3S 85F: 0.96 M ternary weights, context 256: 3,124 of the 3,744 kbit of EBR (83%).
    "ulx3s": _config(hidden_size=192, intermediate_size=384, num_hidden_layers=3,
                     num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256),
    # iCE40 UP5K and Tang Nano 9K: 123 K ternary weights, context 128, one kv head, tied
    # embedding: 453 of the Tang Nano 9K's 468 kbit of BSRAM (97%), 40% of the UP5K's memory.
    "small": _config(hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                     num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=128,
                     tie_word_embeddings=True),
}


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch: int = 32
    learning_rate: float = 2e-3
    min_learning_rate: float = 2e-4
    warmup: int = 100
    weight_decay: float = 0.05
    eval_every: int = 250
    eval_batches: int = 16
    seed: int = 0


SETTINGS = {"ulx3s": TrainSettings(steps=3000), "small": TrainSettings(steps=3000)}


# -- data ---------------------------------------------------------------------------------------

def encode_text(text: str, alphabet: str = SHAKESPEARE_ALPHABET) -> np.ndarray:
    index = {c: i for i, c in enumerate(alphabet)}
    unknown = sorted(set(text) - index.keys())
    if unknown:
        raise ValueError(f"text has characters outside the alphabet: {''.join(unknown)!r}")
    return np.array([index[c] for c in text], dtype=np.int64)


def load_splits(path: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of the training split (first 90%) and the validation split (last 10%)."""
    ids = encode_text(Path(path).read_text())
    cut = int(len(ids) * (1 - VALIDATION_FRACTION))
    return ids[:cut], ids[cut:]


def validation_windows(ids: np.ndarray, length: int, count: int) -> np.ndarray:
    """``count`` windows of ``length + 1`` tokens spread evenly over ``ids`` (input plus target)."""
    starts = np.linspace(0, len(ids) - length - 1, count).astype(np.int64)
    return np.stack([ids[s:s + length + 1] for s in starts])


# -- the network --------------------------------------------------------------------------------

def _torch():
    import torch
    return torch


def build_network(config: BitNetConfig, precision: str = "ternary", seed: int = 0):
    """The torch module: ``net(ids [B, T]) -> logits [B, T, vocab]``; weights in HF names."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    if precision not in ("ternary", "float"):
        raise ValueError(f"precision must be 'ternary' or 'float', not {precision!r}")
    quantized = precision == "ternary"
    cfg = config

    def ste(x, q):
        return x + (q - x).detach()

    class BitLinear(nn.Linear):
        def __init__(self, n_in, n_out):
            super().__init__(n_in, n_out, bias=False)

        def forward(self, x):
            if not quantized:
                return F.linear(x, self.weight)
            w = self.weight
            w_scale = 1.0 / w.abs().mean().clamp(min=ABSMEAN_FLOOR)
            w = ste(w, (w * w_scale).round().clamp(-1, 1) / w_scale)
            x_scale = ACT_QMAX / x.abs().amax(dim=-1, keepdim=True).clamp(min=ACT_FLOOR)
            x = ste(x, (x * x_scale).round().clamp(ACT_QMIN, ACT_QMAX) / x_scale)
            return F.linear(x, w)

    class RMSNorm(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))

        def forward(self, x):
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps))

    d = cfg.dim_per_head
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = torch.arange(cfg.max_position_embeddings, dtype=torch.float32)[:, None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    rope_cos, rope_sin = angles.cos(), angles.sin()

    def rope(x):  # x [B, heads, T, d]; rotate_half pairing as transformers
        t = x.shape[2]
        rotated = torch.cat([-x[..., d // 2:], x[..., :d // 2]], dim=-1)
        return x * rope_cos[:t] + rotated * rope_sin[:t]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = BitLinear(cfg.hidden_size, cfg.num_attention_heads * d)
            self.k_proj = BitLinear(cfg.hidden_size, cfg.num_key_value_heads * d)
            self.v_proj = BitLinear(cfg.hidden_size, cfg.num_key_value_heads * d)
            self.o_proj = BitLinear(cfg.num_attention_heads * d, cfg.hidden_size)
            self.attn_sub_norm = RMSNorm(cfg.hidden_size)

        def forward(self, x):
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, -1, d).transpose(1, 2)
            k = self.k_proj(x).view(b, t, -1, d).transpose(1, 2)
            v = self.v_proj(x).view(b, t, -1, d).transpose(1, 2)
            group = cfg.num_attention_heads // cfg.num_key_value_heads
            k = rope(k).repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
            out = F.scaled_dot_product_attention(rope(q), k, v, is_causal=True)
            return self.o_proj(self.attn_sub_norm(out.transpose(1, 2).reshape(b, t, -1)))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = BitLinear(cfg.hidden_size, cfg.intermediate_size)
            self.up_proj = BitLinear(cfg.hidden_size, cfg.intermediate_size)
            self.down_proj = BitLinear(cfg.intermediate_size, cfg.hidden_size)
            self.ffn_sub_norm = RMSNorm(cfg.intermediate_size)

        def forward(self, x):
            gate = self.gate_proj(x)
            gate = F.relu(gate).square() if cfg.hidden_act == "relu2" else F.silu(gate)
            return self.down_proj(self.ffn_sub_norm(gate * self.up_proj(x)))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn, self.mlp = Attention(), MLP()
            self.input_layernorm = RMSNorm(cfg.hidden_size)
            self.post_attention_layernorm = RMSNorm(cfg.hidden_size)

        def forward(self, h):
            h = h + self.self_attn(self.input_layernorm(h))
            return h + self.mlp(self.post_attention_layernorm(h))

    class Body(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
            self.layers = nn.ModuleList(Layer() for _ in range(cfg.num_hidden_layers))
            self.norm = RMSNorm(cfg.hidden_size)

    class CausalLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = Body()
            if not cfg.tie_word_embeddings:
                self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

        def forward(self, ids):
            h = self.model.embed_tokens(ids)
            for layer in self.model.layers:
                h = layer(h)
            head = self.model.embed_tokens.weight if cfg.tie_word_embeddings else self.lm_head.weight
            return F.linear(self.model.norm(h), head)

    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
        net = CausalLM()
        for name, p in net.named_parameters():
            if p.dim() == 2:   # transformers' initializer_range
                nn.init.normal_(p, std=0.02)
    return net


def master_tensors(net) -> dict[str, np.ndarray]:
    """The network's float weights under their HF names (the tied head is not repeated)."""
    return {name: p.detach().cpu().numpy().astype(np.float32) for name, p in net.named_parameters()}


# -- training -----------------------------------------------------------------------------------

def learning_rate(step: int, s: TrainSettings) -> float:
    """Linear warm-up, then cosine decay from learning_rate to min_learning_rate."""
    if step < s.warmup:
        return s.learning_rate * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.min_learning_rate + 0.5 * (s.learning_rate - s.min_learning_rate) * (1 + math.cos(math.pi * progress))


def evaluate(net, windows: np.ndarray, batch: int) -> float:
    """Mean cross-entropy (nats per character) of the next-token predictions over ``windows``."""
    torch = _torch()
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            w = torch.from_numpy(windows[i:i + batch])
            logits = net(w[:, :-1])
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum").item()
            count += w[:, 1:].numel()
    net.train()
    return total / count


def train(name: str, out: Path | None = None, precision: str = "ternary", steps: int | None = None,
          work: Path | None = None, resume: bool = False, threads: int | None = None,
          progress=None, log=print) -> dict:
    """Train model ``name`` (a key of MODELS) and write it; returns the metrics written with it.

    ternary: the packed HF checkpoint (config.json, model.safetensors, tokenizer.json) and
    ``training.json`` go to ``out`` (default models/NAME). float: ``baseline.json`` (metrics only)
    goes to ``out``. ``work`` (default build/train/NAME-PRECISION) holds the resumable state.
    """
    torch = _torch()
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    config, settings = MODELS[name], SETTINGS[name]
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, not {steps}")
        settings = dataclasses.replace(settings, steps=steps,
                                       warmup=min(settings.warmup, max(1, steps // 10)),
                                       eval_every=min(settings.eval_every, steps))
    out = Path(out) if out is not None else paths.MODELS / name
    work = Path(work) if work is not None else paths.BUILD / "train" / f"{name}-{precision}"
    if threads:
        torch.set_num_threads(threads)
    train_ids, val_ids = load_splits()
    context = config.max_position_embeddings
    val_windows = validation_windows(val_ids, context, settings.eval_batches * settings.batch)

    net = build_network(config, precision, settings.seed)
    decay = [p for p in net.parameters() if p.dim() == 2]
    no_decay = [p for p in net.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=settings.learning_rate, betas=(0.9, 0.95))
    rng = np.random.default_rng(settings.seed)
    state_file = work / "state.pt"
    step, history, elapsed = 0, [], 0.0
    if resume and state_file.is_file():
        state = torch.load(state_file, weights_only=False)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        step, history, elapsed = state["step"], state["history"], state["elapsed"]
        log(f"resumed {name} ({precision}) at step {step} from {state_file}")

    started = time.monotonic() - elapsed
    train_loss = float("nan")
    while step < settings.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        starts = rng.integers(0, len(train_ids) - context - 1, settings.batch)
        batch = torch.from_numpy(np.stack([train_ids[s:s + context + 1] for s in starts]))
        logits = net(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        step += 1
        train_loss = loss.item()
        if progress:
            progress(step, settings.steps, train_loss)
        if step % settings.eval_every == 0 or step == settings.steps:
            val_loss = evaluate(net, val_windows, settings.batch)
            history.append({"step": step, "train_loss": train_loss, "val_loss": val_loss})
            log(f"{name} ({precision}) step {step}: train {train_loss:.4f}, validation {val_loss:.4f} nats/char")
            work.mkdir(parents=True, exist_ok=True)
            torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": rng.bit_generator.state, "step": step, "history": history,
                        "elapsed": time.monotonic() - started}, state_file)

    metrics = {
        "model": name, "precision": precision, "steps": settings.steps,
        "settings": dataclasses.asdict(settings),
        "tokens_seen": settings.steps * settings.batch * context,
        "validation": {"split": f"last {VALIDATION_FRACTION:.0%} of {DATA.name}",
                       "windows": len(val_windows), "positions": int(val_windows[:, 1:].size)},
        "final_val_loss": history[-1]["val_loss"], "history": history,
        "train_seconds": round(time.monotonic() - started, 1), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    out.mkdir(parents=True, exist_ok=True)
    if precision == "ternary":
        pack_master_checkpoint(out, config, master_tensors(net), char_tokenizer_json())
        (out / "training.json").write_text(json.dumps(metrics, indent=2) + "\n")
    else:
        (out / "baseline.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
