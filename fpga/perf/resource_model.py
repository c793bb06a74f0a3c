"""LUTs, flip-flops, block RAMs and DSPs of a board's SoC at given engine sizes, predicted without
synthesis (docs/performance.md).

- **Block RAM and LUT RAM** are counted from the design's memories (:mod:`fpga.perf.memory_map`), as
  Yosys maps them: nothing fitted.
- **LUTs, flip-flops and DSPs** are linear in :data:`FEATURES` — the hidden size's bit length, the
  array's ternary lanes and rows,
  the three lane counts, the LUT RAM primitives, the block RAMs' read muxes, the ROM bits in logic —
  with coefficients fitted once to whole-SoC synthesis runs (``tritium explore --refit``; the runs
  and the coefficients are in ``fpga/perf/data/``). The fit is for ECP5 (nextpnr's TRELLIS_COMB after
  packing: a LUT4, half a carry cell, half a LUT RAM); other families scale it by the ratio measured
  on one of their builds (``family_scale`` in ``resource_model.json``).
"""

import functools
import json

from hw.spram import SPRAM_DEPTH, SPRAM_WIDTH
from model.memory import Part
from model.numerics import WEIGHT_CODE_BITS

from . import DATA
from .memory_map import map_memory, soc_memories, soc_names, weight_words

FEATURES = ("fixed", "width", "array", "rows", "lanes", "attention_lanes", "head_lanes", "lut_ram",
            "block_mux", "logic_rom")
RESOURCES = ("luts", "ffs", "ram", "dsp")


@functools.lru_cache(maxsize=None)
def coefficients() -> dict:
    path = DATA / "resource_model.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `tritium explore --refit`")
    return json.loads(path.read_text())


def memory_use(cfg, params: dict, family: str, distributed=frozenset(), *, loaded=False,
               spram=False) -> dict:
    """Block RAMs, LUT RAM primitives, block-RAM mux bits and ROM bits in logic of the SoC;
    ``distributed``: engine memories forced to LUT RAM, named as ``Board.distributed_ram`` names
    them (``hw.engine.SHALLOW_BUFFERS``)."""
    use = {"ram": 0, "lut_ram": 0, "block_mux": 0, "logic_rom": 0}
    forced = soc_names(distributed)
    for memory in soc_memories(cfg, params, loaded=loaded, spram=spram):
        mapped = map_memory(memory, family, memory.name in forced)
        use["ram"] += mapped.blocks
        use["lut_ram"] += mapped.lut_rams
        use["block_mux"] += mapped.mux_bits
        if mapped.kind == "logic":          # small ROMs; iCE40's shallow RAMs (no LUT RAM)
            use["logic_rom"] += memory.bits
    return use


def features(cfg, params: dict, use: dict) -> dict:
    """The values of :data:`FEATURES` for the SoC of ``cfg`` at ``params`` with ``use``
    (:func:`memory_use` on ECP5). ``width`` is the hidden size's bit length: the datapaths' widths
    (accumulators, logits, scores) grow with the logarithm of the model's sizes."""
    return {"fixed": 1, "width": cfg.hidden_size.bit_length(),
            "array": params["rows"] * params["simd"], "rows": params["rows"],
            "lanes": params["lanes"], "attention_lanes": params["attention_lanes"],
            "head_lanes": params["head_lanes"], "lut_ram": use["lut_ram"],
            "block_mux": use["block_mux"], "logic_rom": use["logic_rom"]}


def estimate(model: dict, cfg, params: dict, family: str, distributed=frozenset(),
             **memory_options) -> dict:
    """``model``'s ECP5 LUTs, FFs and DSPs and ``family``'s block RAMs, not yet scaled to the
    family (the fit's own use, before its family scales exist)."""
    use = memory_use(cfg, params, "ecp5", distributed, **memory_options)
    values = features(cfg, params, use)
    estimated = {resource: sum(coef[name] * values[name] for name in FEATURES)
                 for resource, coef in model["coefficients"].items()}
    estimated["ram"] = (use if family == "ecp5" else
                        memory_use(cfg, params, family, distributed, **memory_options))["ram"]
    return estimated


def predict(cfg, params: dict, family: str, distributed=frozenset(), **memory_options) -> dict:
    """Predicted ``luts``, ``ffs``, ``ram``, ``dsp`` (and ``spram``) of the SoC on ``family``."""
    model = coefficients()
    predicted = estimate(model, cfg, params, family, distributed, **memory_options)
    for resource, scale in model.get("family_scale", {}).get(family, {}).items():
        if resource in predicted:
            predicted[resource] *= scale
    if memory_options.get("spram"):   # the weights in SPRAM primitives side by side (hw.spram)
        words = weight_words(cfg, params["rows"], params["simd"])
        width = WEIGHT_CODE_BITS * params["rows"] * params["simd"]
        predicted["spram"] = -(-width // SPRAM_WIDTH) * -(-words // SPRAM_DEPTH)
    return {k: int(round(v)) for k, v in predicted.items()}


def overflows(predicted: dict, part: Part) -> list[tuple[str, int, int]]:
    """(resource, predicted, available) for each resource ``predicted`` needs more of than
    ``part`` has."""
    return [(name, predicted[name], getattr(part, name)) for name in (*RESOURCES, "spram")
            if name in predicted and predicted[name] > getattr(part, name)]


@functools.lru_cache(maxsize=None)
def fmax_class(family: str) -> str:
    """What is known of ``family``'s fmax: the range over the placed SoCs in
    ``fpga/perf/data/validation.json`` (fmax is not predicted per point: docs/performance.md)."""
    path = DATA / "validation.json"
    builds = json.loads(path.read_text())["builds"] if path.exists() else []
    fmax = [b["fmax_mhz"] for b in builds if b["fmax_mhz"] and family == "ecp5"]
    if not fmax:
        return "not measured (no SoC of this family fits)"
    return f"{min(fmax):.1f}–{max(fmax):.1f} MHz over {len(fmax)} placed SoCs"
