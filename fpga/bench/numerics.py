"""``tritium bench numerics``: candidate changes to the numeric contract, measured before any is
made (issue 18: "change docs/numerics.md and model/integer.py first and show that integer-vs-float
top-1 agreement on validation does not drop and validation loss does not rise by more than 0.002
nats").

Each variant runs the integer model with ``model.numerics`` changed for the duration of the run
(restored after), over the same validation positions as docs/models.md (``model.report``). The
variants are the narrowings a lean vector lane needs:

* ``normalized apply_scale``: every ``apply_scale`` operand normalized first
  (``numerics.normalize``: a shift that brings the vector's largest magnitude under 2^17, truncating
  magnitudes), so the dequantization, the attention scores, the attention output and SiLU's input
  all multiply at most 18-bit operands (the attention output is up to 31 bits today);
* ``15-bit normalization``: that, and every normalized operand (the norm's ``x_n``, the quantizer's
  ``u_n``, the gated activation's factors) under 2^15 instead of 2^17, so products fit a 16×16
  multiplier (the UP5K's SB_MAC16);
* ``13-bit normalization``: the same under 2^13, to see where narrowing starts to cost;
* ``R·127 reciprocal``: the codes' reciprocal as ``ceil(127·2^33 / m_n)`` (one product a code
  instead of two).
Writes its section of docs/benchmarks.md.
"""

import contextlib

import numpy as np

from model import numerics as nx
from model import paths

from . import provenance, write_section

MODELS = ("small", "ulx3s")
POSITIONS = 4096
LOSS_LIMIT = 0.002          # nats: the bound on the validation loss's rise


def normalized_apply_scale(x, s, frac: int) -> np.ndarray:
    """``apply_scale`` with ``x`` normalized first: ``rshift_round(x_n · mant, -(exp + frac + e))``."""
    e, xn = nx.normalize(np.asarray(x, dtype=np.int64))
    mant, exp = np.asarray(s[0], np.int64), np.asarray(s[1], np.int64)
    return nx.rshift_round(xn * mant, -(exp + frac + e))


def r127_absmax_quantize(u) -> tuple[np.ndarray, int]:
    """``absmax_quantize`` with the reciprocal taken of ``127 · 2^33``: one product a code."""
    u = np.asarray(u, dtype=np.int64)
    m = int(np.abs(u).max(initial=0))
    if m == 0:
        return np.zeros(u.shape, dtype=np.int64), 0
    e = int(nx.bitlen(m)) - nx.NORM_MAX_BITLEN
    un, mn = nx.truncate_magnitude(u, e), int(nx.truncate_magnitude(m, e))
    recip = -(-(nx.ACT_MAX << nx.RECIP_SHIFT) // mn)
    return np.sign(un) * ((np.abs(un) * recip + (1 << (nx.RECIP_SHIFT - 1))) >> nx.RECIP_SHIFT), m


VARIANTS = {
    "the contract": {},
    "normalized apply_scale": {"apply_scale": normalized_apply_scale},
    "15-bit normalization": {"apply_scale": normalized_apply_scale, "NORM_MAX_BITLEN": 15},
    "13-bit normalization": {"apply_scale": normalized_apply_scale, "NORM_MAX_BITLEN": 13},
    "R·127 reciprocal": {"absmax_quantize": r127_absmax_quantize},
}


@contextlib.contextmanager
def variant(changes: dict):
    """``model.numerics`` with ``changes`` (attribute: value) for the duration of the block."""
    saved = {name: getattr(nx, name) for name in changes}
    try:
        for name, value in changes.items():
            setattr(nx, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(nx, name, value)


def measure(name: str, variants=tuple(VARIANTS), positions: int = POSITIONS, say=None) -> list[dict]:
    from model.report import evaluate_model

    rows = []
    for label in variants:
        if say:
            say(f"{name}: {label}")
        with variant(VARIANTS[label]):
            result = evaluate_model(paths.MODELS / name, positions=positions)
        rows.append({"model": name, "variant": label, **result})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["## Candidate changes to the numeric contract (issue 18)", "",
             f"{provenance('tritium bench numerics')}; the integer model with `model.numerics` changed "
             "for the run (fpga/bench/numerics.py says how each variant changes it), over the validation "
             "positions `model.report` evaluates (docs/models.md's figures are older). The issue's bar for a change: agreement does not drop and "
             f"the integer validation loss rises by at most {LOSS_LIMIT} nats. Near-ties make agreement "
             "move by about ±0.1% with any change.", "",
             "| model | variant | positions | top-1 agreement | integer loss (nats) | change | "
             "relative RMS logit error |", "|---|---|---|---|---|---|---|"]
    base = {r["model"]: r["integer_loss"] for r in rows if r["variant"] == "the contract"}
    for r in rows:
        change = r["integer_loss"] - base.get(r["model"], r["integer_loss"])
        lines.append(f"| {r['model']} | {r['variant']} | {r['positions']:,} | {100 * r['agreement']:.2f}% "
                     f"| {r['integer_loss']:.5f} | {change:+.5f} | {100 * r['relative_rms_error']:.2f}% |")
    return "\n".join(lines + [""])


def bench_numerics(docs=paths.DOCS, say=None) -> list[dict]:
    rows = [row for name in MODELS for row in measure(name, say=say)]
    write_section("numerics", markdown(rows), docs / "benchmarks.md")
    return rows


def table(rows: list[dict]):
    from rich.table import Table

    result = Table(title="candidate changes to the numeric contract")
    for column in ("model", "variant", "agreement", "integer loss"):
        result.add_column(column)
    for r in rows:
        result.add_row(r["model"], r["variant"], f"{100 * r['agreement']:.2f}%", f"{r['integer_loss']:.5f}")
    return result
