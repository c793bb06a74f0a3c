"""``tritium bench cpu``: the boards' models on this machine's CPU, one core, beside what the boards
make of them. Three implementations generate the same greedy tokens from the boards' benchmark
prompt: the float NumPy model (``model/bitnet.py``), the integer NumPy model (``model/integer.py``,
what the hardware computes) and a C port of the float model (``bitnet_cpu.c``, compiled here with
``-O3 -march=native``, in the spirit of llama2.c's run.c) whose tokens must equal the NumPy float
model's. The process is pinned to one core while it measures. Writes its section of
docs/benchmarks.md with the ratio of each board's tok/s (docs/bench-boards.json) to the fastest CPU
figure.
"""

import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

from model import paths

from . import provenance, write_section
from .boards import PROMPT, TOKENS, placed

SOURCE = Path(__file__).with_name("bitnet_cpu.c")
MAGIC = b"TRI1"
REPEATS = 5            # each figure: the best of this many runs (the C program's: 10× as many)
MODELS = ("ulx3s", "small")


class CpuBenchError(RuntimeError):
    pass


def f32(array) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def write_model_file(weights, path: Path):
    """The C program's model file: a header of the shape, then float32 embeddings and norms and, per
    BitLinear, its float32 weight scale and int8 codes (``bitnet_cpu.c``'s ``load``)."""
    cfg = weights.config
    parts = [MAGIC, struct.pack(
        "<10i2f", cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers,
        cfg.num_attention_heads, cfg.num_key_value_heads, cfg.dim_per_head, cfg.max_position_embeddings,
        int(cfg.hidden_act == "silu"), int(cfg.tie_word_embeddings), cfg.rms_norm_eps, cfg.rope_theta)]
    parts.append(f32(weights.embed_tokens))
    for layer in weights.layers:
        parts += [f32(layer.input_layernorm), f32(layer.post_attention_layernorm),
                  f32(layer.attn_sub_norm), f32(layer.ffn_sub_norm)]
        for linear in (layer.q_proj, layer.k_proj, layer.v_proj, layer.o_proj, layer.gate_proj,
                       layer.up_proj, layer.down_proj):
            parts += [struct.pack("<f", linear.weight_scale),
                      np.ascontiguousarray(linear.codes, dtype=np.int8).tobytes()]
    parts.append(f32(weights.norm))
    if not cfg.tie_word_embeddings:
        parts.append(f32(weights.lm_head))
    path.write_bytes(b"".join(parts))


def c_compiler() -> str | None:
    """The C compiler on PATH (cc, gcc or clang), or None."""
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def compile_program(directory: Path) -> Path:
    compiler = c_compiler()
    if compiler is None:
        raise CpuBenchError("no C compiler (cc, gcc or clang) on PATH: apt-get install gcc")
    binary = directory / "bitnet_cpu"
    done = subprocess.run([compiler, "-O3", "-march=native", "-o", str(binary), str(SOURCE), "-lm"],
                          capture_output=True, text=True)
    if done.returncode:
        raise CpuBenchError(f"compiling {SOURCE.name} failed: {done.stderr.strip()[-500:]}")
    return binary


def run_program(binary: Path, model_file: Path, prompt_ids, tokens: int) -> tuple[list[int], float]:
    """The C program's greedy tokens and the seconds they took."""
    done = subprocess.run([str(binary), str(model_file), str(tokens), *map(str, prompt_ids)],
                          capture_output=True, text=True)
    if done.returncode:
        raise CpuBenchError(f"bitnet_cpu failed: {done.stderr.strip()}")
    lines = done.stdout.split("\n")
    return [int(t) for t in lines[0].split()], float(lines[1])


def decode_seconds(generate, prompt_ids, tokens: int) -> tuple[list[int], float]:
    """A NumPy model's greedy tokens and seconds a token: ``generate`` of ``tokens`` less that of
    one (the prompt's forward pass and the first choice), over the other ``tokens − 1``; best of
    :data:`REPEATS`."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        generate(prompt_ids, 1)
        first = time.perf_counter() - started
        started = time.perf_counter()
        new = generate(prompt_ids, tokens)
        best = min(best, (time.perf_counter() - started - first) / (tokens - 1))
    return new, best


def measure_model(name: str, directory: Path, binary: Path, status=None) -> dict:
    from model.bitnet import BitNetModel
    from model.checkpoint import load_weights
    from model.integer import IntegerModel
    from model.tokenizer import encode_text, load_tokenizer

    model_dir = paths.MODELS / name
    weights = load_weights(model_dir)
    prompt = encode_text(load_tokenizer(model_dir), PROMPT)
    model_file = directory / f"{name}.bin"
    write_model_file(weights, model_file)
    if status:
        status(f"{name}: the NumPy float model")
    float_tokens, float_seconds = decode_seconds(BitNetModel(weights).generate, prompt, TOKENS)
    if status:
        status(f"{name}: the NumPy integer model")
    integer = IntegerModel(weights)
    integer_tokens, integer_seconds = decode_seconds(integer.generate, prompt, TOKENS)
    if status:
        status(f"{name}: the C program")
    runs = [run_program(binary, model_file, prompt, TOKENS) for _ in range(10 * REPEATS)]
    c_tokens = runs[0][0]
    if c_tokens != float_tokens:
        raise CpuBenchError(f"{name}: the C program's tokens {c_tokens} differ from the NumPy float "
                            f"model's {float_tokens}")
    return {"model": name, "tokens": TOKENS, "prompt_tokens": len(prompt),
            "tok_s": {"numpy float": 1 / float_seconds, "numpy integer": 1 / integer_seconds,
                      "C float32": TOKENS / min(seconds for _, seconds in runs)},
            "integer_equals_float": integer_tokens == float_tokens}


def bench_cpu(docs: Path = paths.DOCS, status=None) -> list:
    directory = paths.BUILD / "cpu"
    directory.mkdir(parents=True, exist_ok=True)
    binary = compile_program(directory)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})    # one core for everything measured (and its children)
    try:
        results = [measure_model(name, directory, binary, status) for name in MODELS]
    finally:
        os.sched_setaffinity(0, cores)
    store = docs / "bench-boards.json"
    boards = json.loads(store.read_text()) if store.exists() else {}
    write_section("cpu", markdown(results, boards), docs / "benchmarks.md")
    return results


def board_rows(boards: dict, model: str) -> list:
    """(board, tok/s at its clock) of each benched board that runs ``model``, placed and routed."""
    return [(name, row["tok_s_clock"]) for name, row in boards.items()
            if row["model"] == f"models/{model}" and placed(row.get("report", {}))]


def markdown(results: list, boards: dict) -> str:
    lines = ["## The same models on a CPU core", "",
             f"{provenance('tritium bench cpu')}: one core (the process pinned to it). Greedy "
             f"generation of {TOKENS} tokens after {PROMPT!r}, as `tritium bench boards` measures the "
             "boards; tok/s over the new tokens (NumPy: generate of "
             f"{TOKENS} tokens less generate of 1, best of {REPEATS}; C: the program's own clock over "
             f"its {TOKENS} positions, best of {10 * REPEATS}). The C program (fpga/bench/bitnet_cpu.c, "
             "`-O3 -march=native`) is the float model in float32 and gives the NumPy float model's "
             "tokens (checked); the integer model is what the boards compute.", "",
             "| model | NumPy float tok/s | NumPy integer tok/s | C float32 tok/s | boards running it "
             "(tok/s at their clock, ÷ the C figure) |", "|---|---|---|---|---|"]
    for r in results:
        c = r["tok_s"]["C float32"]
        shown = "; ".join(f"{name} {tok_s:,.0f} ({tok_s / c:.2f}×)"
                          for name, tok_s in board_rows(boards, r["model"]))
        lines.append(f"| {r['model']} | {r['tok_s']['numpy float']:,.0f} | "
                     f"{r['tok_s']['numpy integer']:,.0f} | {c:,.0f} | {shown or '—'} |")
    lines += ["", "A ratio above 1: the board generates faster than the C program on one core of this "
              "machine. The board figures are docs/bench-boards.json's (`tritium bench boards`), "
              "measured on their own dates.", ""]
    return "\n".join(lines)


def table(results: list):
    from rich.table import Table

    out = Table(title="one CPU core, greedy tok/s")
    for column in ("model", "NumPy float", "NumPy integer", "C float32"):
        out.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        out.add_row(r["model"], *(f"{r['tok_s'][k]:,.0f}"
                                  for k in ("numpy float", "numpy integer", "C float32")))
    return out
