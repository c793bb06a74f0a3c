"""Comparing the Engine's taps with ``model.integer``'s trace, step by step (shared by the Amaranth
test in tests/hw/test_engine.py and the cocotb bench sim/tb_engine.py).

A tap is ``(pc, kind, data, mant, exp)`` (``hw.engine.Tap`` kinds, ``data`` the lanes' values);
the model's trace is what ``IntegerModel.step(..., trace=...)`` reports. Both are grouped into
``{(layer, step name): {what: value}}`` per position, so a mismatch names the layer, the step (the
block) and the element.
"""

import numpy as np
from amaranth import Module
from amaranth.lib import wiring

from hw.engine import Tap
from hw.sequencer import Op
from sim.spi_flash import SpiFlashModel

TAP_NAMES = {Tap.H: "h", Tap.CODES: "codes", Tap.SCALE: "scale", Tap.HEAD_CODES: "head_codes",
             Tap.HEAD_SCALE: "head_scales", Tap.INPUT: "input", Tap.LOGIT: "logits"}


def model_trace(model, cache, token) -> dict:
    """One position's trace: ``model.step(token, cache)``'s values by (layer, step), as flat
    integer lists (a scale is ``[mant, exp]``, head scales ``[mant, exp, mant, exp, …]``)."""
    steps = {}

    def record(layer, step, **values):
        for what, value in values.items():
            if what in ("scale", "head_scales"):
                value = np.stack([np.atleast_1d(value[0]), np.atleast_1d(value[1])], axis=1)
            steps.setdefault((layer, step), {})[what] = [int(v) for v in np.ravel(value)]

    model.step(token, cache, trace=record)
    return steps


def group_taps(engine, taps) -> list[dict]:
    """``engine``'s taps grouped like :func:`model_trace`, one dict per position (a position starts
    with an EMBED step's first tap). Logits count for the LM head's norm step (they stream while
    the sequencer is on to SAMPLE)."""
    program = engine.program
    widths = {Tap.HEAD_CODES: engine.attention_lanes, Tap.CODES: engine.norm_lanes, Tap.LOGIT: 1}
    head_norm = next(s for s in program if s.op == Op.NORM and s.layer == 0 and s.name == "norm")
    positions = []
    previous_pc = None
    for pc, kind, values, mant, exp in taps:
        step = program[pc]
        if step.op == Op.EMBED and previous_pc != pc:
            positions.append({})
        if kind != Tap.SCALE:           # (a norm's D, held until the port is free, may come between
            previous_pc = pc            # an EMBED's taps: it names its norm's step)
        if kind == Tap.LOGIT:
            step = head_norm
        position = positions[-1]
        if kind == Tap.SCALE and step is head_norm and len(positions) > 1 \
                and (head_norm.layer, head_norm.name) not in position:
            position = positions[-2]     # greedy: D comes after the next position has begun
        group = position.setdefault((step.layer, step.name), {})
        what = TAP_NAMES[Tap(kind)]
        if kind in (Tap.SCALE, Tap.HEAD_SCALE):
            group.setdefault(what, []).extend([mant, exp])
        else:
            group.setdefault(what, []).extend(values[:widths.get(kind, engine.lanes)])
    return positions


def compare(engine_steps: dict, model_steps: dict, position: int) -> list[str]:
    """Every difference as a line naming the position, layer, step, value and first element."""
    problems = []
    for key, expected in model_steps.items():
        got = engine_steps.get(key, {})
        for what, want in expected.items():
            have = got.get(what)
            if have is None:
                problems.append(f"position {position} layer {key[0]} {key[1]} {what}: no taps")
            elif have != want:
                first = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b),
                             min(len(have), len(want)))
                problems.append(
                    f"position {position} layer {key[0]} {key[1]} {what}: element {first} differs "
                    f"(engine {have[first] if first < len(have) else 'missing'}, "
                    f"model {want[first] if first < len(want) else 'missing'}; "
                    f"{len(have)} vs {len(want)} values)")
    return problems


def engine_factory(model: str, rows: int, simd: int, lanes: int, attention_lanes: int | None = None,
                   head_lanes: int | None = None, norm_ratio: int = 1, output_lanes: int | None = None,
                   dequantizer_units: int | None = None,
                   k_max: int = 8, taps: bool = False, flash_offset: int | None = None, spram: bool = False,
                   multiplier: str | None = None, with_model: bool = False):
    """The Engine for the checkpoint directory ``model`` (JSON-able parameters, for the cocotb
    harness's build cache); with ``flash_offset`` inside an :class:`EngineWithFlash`; with
    ``with_model`` the Engine itself and the IntegerModel."""
    from hw.engine import Engine
    from model.checkpoint import load_weights
    from model.integer import IntegerModel

    integer = IntegerModel(load_weights(model))
    engine = Engine(integer, rows=rows, simd=simd, lanes=lanes, attention_lanes=attention_lanes,
                    head_lanes=head_lanes, norm_ratio=norm_ratio, output_lanes=output_lanes,
                    dequantizer_units=dequantizer_units,
                    k_max=k_max, taps=taps, flash_offset=flash_offset, spram=spram, multiplier=multiplier)
    if with_model:
        return engine, integer
    return engine if flash_offset is None else EngineWithFlash(engine, flash_offset)


class EngineWithFlash(wiring.Component):
    """An Engine that loads its weights from SPI flash, with the flash (a SpiFlashModel holding
    ``bytes(offset)`` then the engine's flash image) beside it: the Engine's ports but ``flash``."""

    def __init__(self, engine, offset: int):
        self._engine, self._offset = engine, offset
        members = {name: member for name, member in engine.signature.members.items()
                   if name != "flash"}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.flash = flash = SpiFlashModel(bytes(self._offset) + engine.flash_image())
        wiring.connect(m, engine.flash, flash.spi)
        for path, member in self.signature.members.flatten():
            outer, inner = self, engine
            for part in path:
                outer, inner = _member(outer, part), _member(inner, part)
            if member.is_port:
                m.d.comb += (outer.eq(inner) if member.flow == wiring.Out else inner.eq(outer))
        return m


def _member(obj, part):
    return obj[part] if isinstance(part, int) else getattr(obj, part)
