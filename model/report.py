"""docs/models.md: the shipped tiny models measured with the NumPy float and integer models.

For each model: its shape and memory budget per board (model/memory.py), how it was trained
(models/NAME/training.json and the full-precision baseline's baseline.json, written by
model/train.py), validation loss and bits per character of the float-ternary model (model/bitnet.py)
and of the integer model (model/integer.py) on the same validation windows, top-1 agreement of
integer vs float there, and greedy samples from both.
"""

import json
import math
from pathlib import Path

import numpy as np

from .bitnet import BitNetModel
from .checkpoint import load_weights
from .compare import paired_logits
from .integer import IntegerModel
from .memory import BOARDS, memory_budget
from .tokenizer import load_tokenizer
from . import paths
from .train import MODELS, load_splits, validation_windows

SAMPLE_PROMPT = "ROMEO:"
SAMPLE_LENGTH = 200
LN2 = math.log(2)


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean negative log-likelihood (nats) of ``targets`` under softmax(``logits``), in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].mean())


def evaluate_model(directory, positions: int = 4096, progress=None) -> dict:
    """Float and integer validation loss and their top-1 agreement over >= ``positions`` positions."""
    weights = load_weights(directory)
    context = weights.config.max_position_embeddings
    windows = validation_windows(load_splits()[1], context, math.ceil(positions / context))
    ref, got, targets = [], [], []
    for w in windows:
        f, i = paired_logits(weights, w[:-1])
        ref.append(f), got.append(i), targets.append(w[1:])
        if progress:
            progress()
    ref, got, targets = np.concatenate(ref), np.concatenate(got), np.concatenate(targets)
    disagree = ref.argmax(-1) != got.argmax(-1)
    top_two = np.sort(ref, axis=-1)[:, -2:]
    margins = (top_two[:, 1] - top_two[:, 0])[disagree]
    return {"positions": len(targets), "windows": len(windows),
            "float_loss": cross_entropy(ref, targets), "integer_loss": cross_entropy(got, targets),
            "agreement": float(1 - disagree.mean()),
            "largest_disagreement_margin": float(margins.max(initial=0.0)),
            "float_logit_std": float(ref.std()),
            "relative_rms_error": float(np.sqrt(((got - ref) ** 2).mean() / (ref ** 2).mean())),
            "float_accuracy": float((ref.argmax(-1) == targets).mean()),
            "integer_accuracy": float((got.argmax(-1) == targets).mean())}


def samples(directory) -> dict[str, str]:
    """Greedy continuations of SAMPLE_PROMPT from the float and the integer model."""
    weights, tokenizer = load_weights(directory), load_tokenizer(directory)
    prompt = tokenizer.encode(SAMPLE_PROMPT).ids
    n = min(SAMPLE_LENGTH, weights.config.max_position_embeddings - len(prompt))
    return {kind: SAMPLE_PROMPT + tokenizer.decode(model.generate(prompt, n))
            for kind, model in (("float", BitNetModel(weights)), ("integer", IntegerModel(weights)))}


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _bpc(nats: float) -> str:
    return f"{nats:.3f} ({nats / LN2:.3f})"


def model_section(name: str, directory: Path, evaluation: dict, texts: dict[str, str]) -> str:
    cfg = load_weights(directory).config
    training, baseline = _read_json(directory / "training.json"), _read_json(directory / "baseline.json")
    budget = memory_budget(cfg)
    lines = [f"## `{name}` ({directory.relative_to(paths.REPO)})", "",
             f"hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} "
             f"heads of {cfg.dim_per_head} ({cfg.num_key_value_heads} kv), MLP "
             f"{cfg.intermediate_size} ({cfg.hidden_act}), context {cfg.max_position_embeddings}, "
             f"vocabulary {cfg.vocab_size}, embedding {'tied to' if cfg.tie_word_embeddings else 'separate from'} "
             f"the LM head: **{cfg.ternary_weights:,} ternary weights**.", "",
             "### Memory at stored widths (bits; KV cache for the full context)", "",
             "| part | bits |", "|---|---:|"]
    lines += [f"| {part} | {bits:,} |" for part, bits in budget.items()]
    lines += ["", "| board | on-chip memory | bits | used |", "|---|---|---:|---:|"]
    lines += [f"| {board} ({part.name}) | {part.memories} | {part.onchip_bits:,} | "
              f"{100 * budget['total'] / part.onchip_bits:.0f}% |" for board, part in BOARDS.values()]
    lines += ["", "### Training and validation loss (nats per character, bits per character in brackets)", ""]
    if training:
        s = training["settings"]
        lines += [f"Trained by `tritium train --config {name}`: {training['steps']:,} steps of "
                  f"{s['batch']} × {cfg.max_position_embeddings} characters ({training['tokens_seen']:,} "
                  f"characters seen), AdamW, peak learning rate {s['learning_rate']}, seed {s['seed']}, "
                  f"{training['threads']} thread(s), {training['train_seconds'] / 60:.0f} min on the CPU "
                  f"(torch {training['torch']}). Validation: {training['validation']['split']} "
                  f"({training['validation']['windows']} evenly spaced windows, "
                  f"{training['validation']['positions']:,} positions).", ""]
    lines += ["| model | validation loss: final; best |", "|---|---|"]
    for label, run in (("full-precision baseline (same network, float linears, torch)", baseline),
                       ("BitNet b1.58 QAT (torch, fake-quantized)", training)):
        if run:
            best = min(run["history"], key=lambda h: h["val_loss"])
            lines.append(f"| {label} | {_bpc(run['final_val_loss'])}; best {_bpc(best['val_loss'])} "
                         f"at step {best['step']:,} |")
    lines += [f"| float-ternary NumPy model (model/bitnet.py) | {_bpc(evaluation['float_loss'])} |",
              f"| integer model (model/integer.py, the hardware's arithmetic) | {_bpc(evaluation['integer_loss'])} |",
              "", f"NumPy figures over {evaluation['positions']:,} validation positions "
              f"({evaluation['windows']} windows of the full context, evenly spaced). "
              f"Next-character accuracy: float {100 * evaluation['float_accuracy']:.1f}%, integer "
              f"{100 * evaluation['integer_accuracy']:.1f}%. **Top-1 agreement of integer vs float: "
              f"{100 * evaluation['agreement']:.2f}%** (target ≥ 99%); at every position where they "
              f"disagree the float model's top two logits are within "
              f"{evaluation['largest_disagreement_margin']:.3f} of each other (float logits have a "
              f"standard deviation of {evaluation['float_logit_std']:.2f}). The integer logits differ from "
              f"the float ones by a relative RMS error of {100 * evaluation['relative_rms_error']:.1f}%: "
              "the integer model keeps K and V as int8 with per-head scales, stores the embedding and "
              "LM head as int8 rows, and computes RMSNorm, softmax and the scales in fixed point "
              "(docs/numerics.md), so near-ties can flip.", "",
              f"### Greedy samples ({SAMPLE_PROMPT!r})", ""]
    for kind, text in texts.items():
        lines += [f"{kind}:", "", "```", text, "```", ""]
    return "\n".join(lines)


def write_report(path: Path, names=tuple(MODELS), positions: int = 4096, progress=None) -> Path:
    sections = []
    for name in names:
        directory = paths.MODELS / name
        sections.append(model_section(name, directory, evaluate_model(directory, positions, progress),
                                      samples(directory)))
    header = ["# The shipped tiny models", "",
              "Produced by `tritium report models` (model/report.py) from the checkpoints in models/; "
              "`tritium train --config NAME` (model/train.py) trains them, `tritium train --config NAME "
              "--precision float` the full-precision baseline. Character-level TinyShakespeare "
              "(data/README.md); the tokenizer is each model's tokenizer.json.", ""]
    path.write_text("\n".join(header + sections))
    return path
