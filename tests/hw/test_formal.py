# amaranth: UnusedElaboratable=no
"""Formal checks of the gateware's stream rule, counts and bounds (SymbiYosys). The SkidBuffer's and
the Packer's are unbounded proofs (k-induction: their registers are tied to a reference record of
the beats taken, so the properties are inductive); the others are bounded (BMC: every input
sequence up to the depth): k-induction of their counting properties needs invariants about the
in-flight pipeline that are not written yet. Each proof is run once more on a broken copy of its
component, where it must fail."""

import pytest
from amaranth import Elaboratable, Module, Mux, ResetSignal, Signal, Value, unsigned
from amaranth.hdl import Assert, Assume

from fpga.flow import formal
from hw.packing import Packer
from hw.quantizer import AbsmaxQuantizer
from hw.scale_unit import SharedScaleUnit
from hw.skid_buffer import SkidBuffer
from hw.ternary_array import TernaryArray
from model.numerics import ACT_MAX

pytestmark = pytest.mark.skipif(not formal.available(), reason="yowasp-sby / yices not installed")


def stream_holds(m, stream, name, check=Assert):
    """Stream rule: once ``valid`` is high without ``ready``, valid and payload hold next cycle
    (asserted; with ``check=Assume``, what an input stream's source is assumed to keep)."""
    was_waiting = Signal(name=f"{name}_was_waiting")
    payload = Value.cast(stream.payload)
    last_payload = Signal.like(payload, name=f"{name}_last_payload")
    m.d.sync += [was_waiting.eq(stream.valid & ~stream.ready), last_payload.eq(payload)]
    with m.If(was_waiting):
        m.d.comb += [check(stream.valid, f"{name}.valid dropped before a transfer"),
                     check(payload == last_payload,
                           f"{name}.payload changed before a transfer")]


class ArrayHarness(Elaboratable):
    """Free inputs, within the array's contract: at most ceil(k_max/simd) beats per tile."""

    def __init__(self, narrow_accumulator=False):
        self.dut = TernaryArray(rows=3, cols=1, simd=2, k_max=4, assertions=True)
        if narrow_accumulator:             # the off-by-one ceil(log2(K*128)) + 1 width
            self.dut._acc_width -= 1

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += Assume(~ResetSignal())     # registers start at their reset values
        stream_holds(m, dut.o, "o")
        beats_max = -(-dut.k_max // dut.simd)
        beats = Signal(range(beats_max + 1))
        transfer = dut.x.valid & dut.x.ready
        m.d.comb += Assume(~(transfer & (beats == beats_max - 1) & ~dut.x.payload.last))
        with m.If(transfer):
            m.d.sync += beats.eq(Mux(dut.x.payload.last, 0, beats + 1))
        # No result without a tile: outputs never run ahead of the tiles accepted.
        tiles = Signal(8)
        emitted = Signal(8)
        with m.If(dut.x.valid & dut.x.ready & dut.x.payload.last):
            m.d.sync += tiles.eq(tiles + 1)
        with m.If(dut.o.valid & dut.o.ready):
            m.d.sync += emitted.eq(emitted + 1)
        m.d.comb += Assume(tiles < 60)
        m.d.comb += Assert(emitted <= tiles * dut.rows, "more output rows than tiles accepted")
        return m


class QuantizerHarness(Elaboratable):
    def __init__(self):
        self.dut = AbsmaxQuantizer(width=6, lanes=1, max_length=3)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += Assume(~ResetSignal())
        stream_holds(m, dut.o, "o")
        with m.If(dut.o.valid):
            code = dut.o.payload.data[0]
            m.d.comb += Assert((code <= ACT_MAX) & (code >= -ACT_MAX), "code outside [-127, 127]")
        return m


class SharedScaleHarness(Elaboratable):
    """Two clients sending any commands that keep the stream rule, taking results whenever."""

    def __init__(self):
        self.dut = SharedScaleUnit({"first": 4, "second": 8}, exp_bits=6)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += Assume(~ResetSignal())
        for name in dut.clients:
            port = getattr(dut, name)
            stream_holds(m, port.i, f"{name}.i", check=Assume)
            stream_holds(m, port.o, f"{name}.o")
            # each client gets one result for each command taken, none for another's
            pending = Signal(2, name=f"{name}_pending")
            taken = port.i.valid & port.i.ready
            given = port.o.valid & port.o.ready
            m.d.sync += pending.eq(pending + taken - given)
            m.d.comb += Assert(pending <= 1, f"{name}: a second command taken before its result")
            with m.If(port.o.valid):
                m.d.comb += Assert(pending == 1, f"{name}: a result offered without its command")
        return m


class SkidHarness(Elaboratable):
    """A reference FIFO of the beats taken and not yet given: the buffer gives exactly those, in
    order, each once (and keeps the stream rule). Its registers are tied to the reference, so the
    property is inductive."""

    def __init__(self, dut=None):
        self.dut = dut or SkidBuffer(4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        stream_holds(m, dut.o, "o")
        reference = [Signal(4, name=f"reference_{i}") for i in range(2)]
        held = Signal(range(3))
        taken, given = dut.i.valid & dut.i.ready, dut.o.valid & dut.o.ready
        with m.If(given):
            m.d.sync += reference[0].eq(reference[1])
        with m.If(taken):                  # behind the beats still held after this cycle's
            with m.If(held - given == 0):
                m.d.sync += reference[0].eq(dut.i.payload)
            with m.Else():
                m.d.sync += reference[1].eq(dut.i.payload)
        m.d.sync += held.eq(held + taken - given)
        with m.If(~ResetSignal()):
            m.d.comb += [
                Assert(held == dut.o.valid + dut.skid_valid, "beats held != beats taken - given"),
                Assert(~dut.skid_valid | dut.o.valid, "a skid beat behind no output beat"),
                Assert(~dut.o.valid | (dut.o.payload == reference[0]), "a beat out of order"),
                Assert(~dut.skid_valid | (dut.skid == reference[1]), "the skid lost its beat"),
            ]
        return m


class PackerHarness(Elaboratable):
    """Input beats that keep the stream rule; a record of the beats taken since the last output:
    each output is exactly the ``ratio`` beats taken for it, in order, and keeps the stream rule."""

    def __init__(self, dut=None):
        self.dut = dut or Packer(unsigned(3), 1, 3)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        stream_holds(m, dut.i, "i", check=Assume)
        stream_holds(m, dut.o, "o")
        ratio = len(dut.held) + 1
        taken = [Signal(3, name=f"taken_{b}") for b in range(ratio - 1)]
        since = Signal(range(ratio))              # beats taken since the last output beat
        with m.If(dut.i.valid & dut.i.ready):
            m.d.sync += since.eq(Mux(since == ratio - 1, 0, since + 1))
            with m.Switch(since):
                for b in range(ratio - 1):
                    with m.Case(b):
                        m.d.sync += taken[b].eq(dut.i.payload.data[0])
        with m.If(~ResetSignal()):
            m.d.comb += Assert(dut.count == since, "the packer's count != beats taken since an output")
            for b in range(ratio - 1):
                with m.If(since > b):
                    m.d.comb += Assert(dut.held[b][0] == taken[b], f"held beat {b} != beat {b} taken")
            with m.If(dut.o.valid):
                for b in range(ratio - 1):
                    m.d.comb += Assert(dut.o.payload.data[b] == taken[b], f"output part {b} != beat taken")
                m.d.comb += Assert(dut.o.payload.data[ratio - 1] == dut.i.payload.data[0],
                                   "the output's last part is not the beat offered")
        return m


def port_values(dut):
    """Every port of ``dut`` as a value, for ``rtlil.convert(ports=...)`` (inputs become free)."""
    out = []
    for path, member in dut.signature.members.flatten():
        if member.is_port:
            value = dut
            for part in path:
                value = getattr(value, part) if isinstance(part, str) else value[part]
            out.append(value.as_value() if hasattr(value, "as_value") else value)
    return out


def test_array_output_stream_count_and_accumulator_bound(tmp_path):
    harness = ArrayHarness()        # 24 cycles: several whole tiles of up to 2 beats, 3 rows
    ok, log = formal.prove(harness, port_values(harness.dut), workdir=tmp_path, mode="bmc", depth=24)
    assert ok, log[-3000:]


def test_accumulator_check_finds_a_one_bit_short_accumulator(tmp_path):
    """K = 4 = k_max with all -1 weights and -128 activations sums to +512: 10 bits cannot hold it."""
    harness = ArrayHarness(narrow_accumulator=True)
    ok, log = formal.prove(harness, port_values(harness.dut), workdir=tmp_path, mode="bmc", depth=24)
    # the failed assertion is named by its line: the only Assert in hw/ternary_array.py is this one
    assert not ok and "DONE (FAIL" in log and "hw/ternary_array.py" in log, log[-3000:]


def test_quantizer_output_stream_and_code_range(tmp_path):
    harness = QuantizerHarness()    # 40 cycles: a full 3-element token through load, divide, emit
    ok, log = formal.prove(harness, port_values(harness.dut), workdir=tmp_path, mode="bmc", depth=40)
    assert ok, log[-3000:]


def test_shared_scale_unit_streams_and_results_per_client(tmp_path):
    harness = SharedScaleHarness()   # 24 cycles: several short commands from both clients
    ok, log = formal.prove(harness, port_values(harness.dut), workdir=tmp_path, mode="bmc", depth=24)
    assert ok, log[-3000:]


class ReadySkidBuffer(SkidBuffer):
    """A broken one: always ready, so a beat offered while the skid is full is dropped."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class CurrentFirstPacker(Packer):
    """A broken one: the output's first part is the beat offered, not the first beat taken."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.o.payload.data[0].eq(self.i.payload.data[0])
        return m


@pytest.mark.parametrize("make, holds", [
    (lambda: SkidHarness(), True),
    (lambda: SkidHarness(ReadySkidBuffer(4)), False),
    (lambda: PackerHarness(), True),
    (lambda: PackerHarness(CurrentFirstPacker(unsigned(3), 1, 3)), False),
], ids=["skid-buffer", "skid-buffer-always-ready", "packer", "packer-current-beat-first"])
def test_unbounded_proof_holds_and_fails_on_a_broken_copy(make, holds, tmp_path):
    """k-induction (SymbiYosys ``prove``): for every input and ready sequence of any length."""
    harness = make()
    ok, log = formal.prove(harness, port_values(harness.dut), workdir=tmp_path, mode="prove", depth=4)
    assert ok == holds and f"DONE ({'PASS' if holds else 'FAIL'}" in log, log[-3000:]
