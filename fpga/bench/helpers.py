"""``tritium bench helpers``: the shared arithmetic of :mod:`hw.arith` synthesized alone on ECP5
(``fpga.flow.synth``), at the operand widths the blocks use. These constructs sit in many lanes of
many blocks, so their cost multiplies; this is the quick loop for making them cheaper. Writes its
section of docs/benchmarks.md.
"""

from pathlib import Path

from amaranth import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import bit_length, pipelined_max, rounded_right_shift
from model import paths

from . import provenance, write_section

FAMILY = "ecp5-85f"
PNR_TIMEOUT = 300
SHIFT_BITS = 8


class Helper(wiring.Component):
    """One helper between the synthesis wrapper's registers: its inputs come from the scan chain,
    its result goes to an output register (the path measured is the helper alone)."""

    def __init__(self, *, kind: str, width: int, count: int = 1):
        self._kind, self._width, self._count = kind, width, count
        inputs = {"rounded_shift": {"value": In(signed(width)), "shift": In(signed(SHIFT_BITS))},
                  "pipelined_max": {"values": In(data.ArrayLayout(unsigned(width), count))},
                  "bit_length": {"value": In(unsigned(width))}}[kind]
        super().__init__({**inputs, "result": Out(width + 1)})

    def elaborate(self, platform):
        m = Module()
        if self._kind == "rounded_shift":
            result = rounded_right_shift(m, self.value, self.shift, "rounded")
        elif self._kind == "pipelined_max":
            result, _, _ = pipelined_max(m, list(self.values), 1, "peak")
        else:
            result = bit_length(m, self.value, "length")
        m.d.sync += self.result.eq(result)
        return m


CASES = [   # name, parameters, what uses it
    ("rounded_right_shift", dict(kind="rounded_shift", width=37), "Dequantizer lanes (37-bit products)"),
    ("rounded_right_shift", dict(kind="rounded_shift", width=51), "attention, sampler products"),
    ("pipelined_max", dict(kind="pipelined_max", width=33, count=4), "quantizer and relu² peaks, 4 lanes"),
    ("pipelined_max", dict(kind="pipelined_max", width=36, count=8), "quantizer and relu² peaks, 8 lanes"),
    ("bit_length", dict(kind="bit_length", width=48), "ScaleUnit normalizer"),
]


def label(params: dict) -> str:
    count = f"{params['count']} × " if "count" in params else ""
    return f"{count}{params['width']} bits"


def measure(progress=None) -> list[dict]:
    import tempfile

    from fpga.flow.synth import synthesize

    rows = []
    for name, params, use in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            result = synthesize(Helper, params, FAMILY, Path(tmp), timeout=PNR_TIMEOUT)
        rows.append(dict(helper=name, size=label(params), use=use, luts=result.luts, ffs=result.ffs,
                         fmax=result.fmax_mhz))
        if progress:
            progress(f"{name} {label(params)}: {result.luts} LUT4, {result.fmax_mhz:.1f} MHz")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["## Shared arithmetic helpers (hw/arith.py)", "",
             f"{provenance('tritium bench helpers')}; yowasp yosys + nextpnr, {FAMILY}. Each helper "
             "alone between registers (inputs from the synthesis wrapper's scan chain, the result "
             "registered); LUT4 equivalents from Yosys, fmax from nextpnr.", "",
             "| helper | operands | used by | LUT4 eq. | FF | fmax MHz |", "|---|---|---|---|---|---|"]
    lines += [f"| `{r['helper']}` | {r['size']} | {r['use']} | {r['luts']} | {r['ffs']} | {r['fmax']:.1f} |"
              for r in rows]
    return "\n".join(lines + [""])


def bench_helpers(docs: Path = paths.DOCS, status=None) -> list[dict]:
    rows = measure(status)
    write_section("helpers", markdown(rows), docs / "benchmarks.md")
    return rows


def table(rows: list[dict]):
    """The console's table of :func:`bench_helpers`'s rows."""
    from rich.table import Table

    result = Table(title=f"hw/arith.py helpers alone ({FAMILY})")
    for column in ("helper", "operands", "LUT4", "FF", "fmax MHz"):
        result.add_column(column)
    for r in rows:
        result.add_row(r["helper"], r["size"], str(r["luts"]), str(r["ffs"]), f"{r['fmax']:.1f}")
    return result
