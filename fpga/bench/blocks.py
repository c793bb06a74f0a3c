"""``tritium bench blocks``: LUTs, FFs, DSPs, block RAMs and fmax of the engine's vector units,
each synthesized alone (fpga/flow/synth.py) at the sizes a shipped model needs on that part (ECP5-85F: the
``ulx3s`` model; iCE40 UP5K: the ``small`` model; vector lanes: ``LANES``). Writes its section of
docs/benchmarks.md.
"""

import functools
import re
import tempfile
from pathlib import Path

from model import paths

from . import provenance, write_section
from .array import TARGET_FMAX

FAMILIES = {"ecp5-85f": "ulx3s", "ice40-up5k": "small"}      # part: the shipped model it serves
PNR_TIMEOUT = 300      # seconds of place and route per block and part
LANES = 4              # vector lanes of the RMSNorm quantizer and the LM head here (the engine may use simd)
VECTOR_DEPTH = 4096    # the shared vector unit's scratchpad: the ulx3s model's working vectors (3,746)
VECTOR_REGISTERS = 256  # its scalar registers: a whole token's program names 141 (the small model)


def blocks(model: str) -> list[tuple[str, str, object]]:
    """(name, parameters as text, factory) for each block at the sizes of shipped ``model``."""
    from hw.attention import AttentionHead
    from hw.dequantizer import Dequantizer
    from hw.gated_activation import GatedActivation
    from hw.rms_quantizer import RmsQuantizer
    from hw.rope import Rope
    from hw.sampler import Sampler
    from hw.scale_unit import ScaleUnit
    from hw.token_table import TokenTable, logit_width
    from hw import vector_programs
    from hw.scalar_unit import ScalarUnit
    from hw.vector_core import Program, VectorCore
    from hw.vector_lane import VectorLane
    from hw.vector_unit import VectorUnit
    from model import load_weights
    from model.integer import RowScaledInt8
    from model.numerics import SCALE_EXP_BITS, acc_bits

    weights = load_weights(paths.MODELS / model)
    cfg = weights.config
    hidden, d, ffn, ctx = cfg.hidden_size, cfg.dim_per_head, cfg.intermediate_size, cfg.max_position_embeddings
    acc = acc_bits(max(hidden, ffn))
    simd = LANES
    table = RowScaledInt8.from_float(weights.lm_head)     # the embedding when tied
    logits = logit_width(hidden)
    return [
        ("ScaleUnit", f"exp {SCALE_EXP_BITS} bits, n 48 bits", functools.partial(ScaleUnit, int_bits=48)),
        ("RmsQuantizer", f"32-bit input, {simd} lanes, {ffn} long",
         functools.partial(RmsQuantizer, width=32, lanes=simd, max_length=ffn)),
        ("Dequantizer", f"{acc}-bit input, 1 lane", functools.partial(Dequantizer, width=acc, lanes=1)),
        ("Rope", f"{acc}-bit, head {d}, {ctx} positions",
         functools.partial(Rope, width=acc, head_dim=d, positions=ctx, theta=cfg.rope_theta)),
        ("GatedActivation", f"{acc}-bit, 1 lane, {ffn} long",
         functools.partial(GatedActivation, width=acc, lanes=1, max_length=ffn)),
        ("AttentionHead", f"head {d}, {min(8, d)} lanes, {ctx} positions",
         functools.partial(AttentionHead, head_dim=d, lanes=min(8, d), max_positions=ctx)),
        ("TokenTable (LM head)", f"{cfg.vocab_size} × {hidden}, {simd} lanes",
         functools.partial(TokenTable, table, lanes=simd, embedding=False)),
        ("Sampler", f"{logits}-bit logits, vocab {cfg.vocab_size}, top-k ≤ 32",
         functools.partial(Sampler, logit_width=logits, vocab_max=cfg.vocab_size, k_max=32)),
        ("VectorLane (issue 18)", "one lane, no tables",
         functools.partial(VectorLane, exp2=False, sigmoid=False)),
        ("VectorUnit (issue 18)", f"{simd} lanes, {VECTOR_DEPTH} elements, EXP2 table",
         functools.partial(VectorUnit, lanes=simd, depth=VECTOR_DEPTH)),
        ("ScalarUnit (issue 18)", f"{VECTOR_REGISTERS} registers", functools.partial(
            ScalarUnit, registers=VECTOR_REGISTERS, depth=VECTOR_DEPTH)),
        ("VectorCore (issue 18)", f"1 lane, {VECTOR_DEPTH} elements, {VECTOR_REGISTERS} registers, a norm's "
         f"program ({ffn} long)", functools.partial(VectorCore, Program(
             vector_programs.constants() + vector_programs.rms_quantize(0, ffn, "x_scale", ffn, 0, "inv_len",
                                                                       "eps",
                                                                        2 * ffn, 3 * ffn, "scale"),
             registers=VECTOR_REGISTERS, depth=VECTOR_DEPTH), lanes=1)),
    ]


def short_error(text: str) -> str:
    """nextpnr's reason in a few words: which resource ran out, or the time limit."""
    lines = [line for line in text.splitlines() if "ERROR" in line] or text.splitlines()[:1]
    reason = lines[-1]
    found = re.search(r"no BELs remaining to implement cell type '(\w+)'", reason)
    if found:
        return f"does not fit: no {found.group(1)} left"
    if "Failed to expand region" in reason:
        return "does not fit: the placer ran out of logic cells"
    return reason.replace("ERROR: ", "")


def measure(progress=None) -> list[dict]:
    from fpga.flow.synth import synthesize

    rows = []
    for family, model in FAMILIES.items():
        for name, params, factory in blocks(model):
            params = f"{model}: {params}"
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    res = synthesize(factory, {}, family, Path(tmp), freq_mhz=TARGET_FMAX[family],
                                     timeout=PNR_TIMEOUT)
                except RuntimeError as error:     # e.g. the part is too small for the block
                    rows.append(dict(block=name, params=params, family=family,
                                     error=short_error(str(error))))
                    continue
                finally:
                    if progress:
                        progress()
            rows.append(dict(block=name, params=params, family=family, luts=res.luts, ffs=res.ffs,
                             dsp=res.pnr_dsp, ram=res.pnr_ram, fmax=res.fmax_mhz, seconds=res.seconds))
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["## Engine blocks", "",
             f"{provenance('tritium bench blocks')}; yowasp yosys + nextpnr. Each block alone at the "
             f"sizes a shipped model needs on that part (ECP5: `ulx3s`, UP5K: `small`; {LANES} lanes "
             "where a block has lanes, attention lanes up to 8); LUT4 "
             "equivalents and FFs from Yosys (ECP5 counts a CCU2C as 2 LUT4), DSP and block RAM "
             "from nextpnr, fmax from nextpnr on the block "
             f"wrapped with a scan chain (fpga/flow/synth.py); place and route gets {PNR_TIMEOUT} s.", "",
             "| block | parameters | part | LUT4 eq. | FF | DSP | BRAM | fmax MHz | target | time s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['block']} | {r['params']} | {r['family']} | {r['error']} "
                         "| | | | | | |")
            continue
        lines.append(f"| {r['block']} | {r['params']} | {r['family']} | {r['luts']} | {r['ffs']} | "
                     f"{r['dsp']} | {r['ram']} | {r['fmax']:.1f} | {TARGET_FMAX[r['family']]:.0f} | "
                     f"{r['seconds']:.0f} |")
    slow = [r for r in rows if "error" not in r and r["fmax"] < TARGET_FMAX[r["family"]]]
    lines += ["", "Below the part's target fmax: " + (", ".join(
        f"{r['block']} on {r['family']} ({r['fmax']:.1f} MHz)" for r in slow) if slow else "none."), ""]
    return "\n".join(lines)


def bench_blocks(docs: Path = paths.DOCS) -> list[dict]:
    from rich.progress import Progress

    with Progress() as progress:
        task = progress.add_task("bench blocks", total=sum(len(blocks(m)) for m in FAMILIES.values()))
        rows = measure(lambda: progress.advance(task))
    write_section("blocks", markdown(rows), docs / "benchmarks.md")
    return rows


def table(rows: list[dict]):
    """The console's table of :func:`bench_blocks`'s rows."""
    from rich.table import Table

    result = Table(title="engine blocks (ECP5: ulx3s sizes, UP5K: small sizes)")
    for column in ("block", "part", "LUT4", "FF", "DSP", "BRAM", "fmax MHz"):
        result.add_column(column)
    for r in rows:
        result.add_row(r["block"], r["family"], *(("failed", "", "", "", "") if "error" in r else (
            str(r["luts"]), str(r["ffs"]), str(r["dsp"]), str(r["ram"]), f"{r['fmax']:.1f}")))
    return result
