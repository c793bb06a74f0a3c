"""The KV cache: int8 keys and values with one scale per position, for every layer and kv head
(docs/numerics.md §6; ``model.integer.IntegerKVCache``).

Writing: a head's codes arrive on ``k`` or ``v`` (``lanes`` per beat, ``last`` on the head's last
beat, as :class:`~hw.head_quantizer.HeadQuantizer` emits them) and its scale on ``k_scale`` or
``v_scale``; they are stored for ``write_layer``, ``write_head`` and ``write_position`` (held while
the head is written).

Reading: ``keys``, ``values``, ``key_scales`` and ``value_scales`` are read ports with the addresses
:class:`~hw.attention.AttentionHead` uses (word ``j·W + w``, scale ``j``, ``W = head_dim/lanes``),
inside the region of ``read_layer`` and ``read_head``, but ``value_scales`` inside that of
``value_scales_head`` and ``values`` inside that of ``values_head`` (the attention head scores,
weighs and sums three queries at once, each pass reading its own). One cycle read latency.

Memory: ``layers · kv_heads · positions · head_dim`` int8 codes for each of K and V, and as many
scales (16-bit mantissa and exponent) per position and head.
"""

from amaranth import Module, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, SCALE_EXP_BITS

from .arith import check_integers
from .scale_unit import scale_layout


class KvCache(wiring.Component):
    """Int8 keys and values with a scale per position, every layer and kv head; written a head
    at a time, read by the attention head a word a cycle (one cycle of read latency)."""

    def __init__(self, *, layers: int, kv_heads: int, head_dim: int, positions: int, lanes: int = 1,
                 exp_bits: int = SCALE_EXP_BITS):
        check_integers((("layers", layers), ("kv_heads", kv_heads), ("head_dim", head_dim),
                        ("positions", positions), ("lanes", lanes)))
        if head_dim % lanes:
            raise ValueError(f"lanes must divide head_dim {head_dim}, not {lanes}")
        self._layers, self._kv_heads, self._head_dim = layers, kv_heads, head_dim
        self._positions, self._lanes, self._words = positions, lanes, head_dim // lanes
        word = data.ArrayLayout(signed(ACT_BITS), lanes)
        scale = scale_layout(exp_bits)
        head_words = max(1, (positions * self._words - 1).bit_length())
        head_positions = max(1, (positions - 1).bit_length())
        codes = stream.Signature(data.StructLayout({"data": word, "last": 1}))
        scales = stream.Signature(data.StructLayout({"mant": 16, "exp": signed(exp_bits), "invalid": 1}))
        super().__init__({
            "k": In(codes), "v": In(codes), "k_scale": In(scales), "v_scale": In(scales),
            "write_layer": In(range(layers)), "write_head": In(range(kv_heads)),
            "write_position": In(range(positions)),
            "keys": Out(memory.ReadPort.Signature(addr_width=head_words, shape=word)),
            "values": Out(memory.ReadPort.Signature(addr_width=head_words, shape=word)),
            "key_scales": Out(memory.ReadPort.Signature(addr_width=head_positions, shape=scale)),
            "value_scales": Out(memory.ReadPort.Signature(addr_width=head_positions, shape=scale)),
            "read_layer": In(range(layers)), "read_head": In(range(kv_heads)),
            "value_scales_head": In(range(kv_heads)), "values_head": In(range(kv_heads)),
        })

    words = property(lambda self: self._words)

    def elaborate(self, platform):
        m = Module()
        words, positions = self._words, self._positions
        regions = self._layers * self._kv_heads
        word = data.ArrayLayout(signed(ACT_BITS), self._lanes)
        scale = scale_layout(len(self.k_scale.payload.exp))

        def region(layer, head):
            return layer * self._kv_heads + head

        write_region = region(self.write_layer, self.write_head)
        read_region = region(self.read_layer, self.read_head)
        values_region = region(self.read_layer, self.values_head)
        value_scales_region = region(self.read_layer, self.value_scales_head)
        for name, codes_in, scale_in, codes_out, scales_out in (
                ("k", self.k, self.k_scale, self.keys, self.key_scales),
                ("v", self.v, self.v_scale, self.values, self.value_scales)):
            codes = memory.Memory(shape=word, depth=regions * positions * words, init=[])
            scales = memory.Memory(shape=scale, depth=regions * positions, init=[])
            m.submodules[f"{name}_codes"], m.submodules[f"{name}_scales"] = codes, scales
            code_write, scale_write = codes.write_port(), scales.write_port()
            code_read, scale_read = codes.read_port(), scales.read_port()
            beat = Signal(range(words + 1), name=f"{name}_beat")
            m.d.comb += [codes_in.ready.eq(1), scale_in.ready.eq(1),
                         code_write.addr.eq((write_region * positions + self.write_position) * words
                                            + beat),
                         code_write.data.eq(codes_in.payload.data),
                         code_write.en.eq(codes_in.valid),
                         scale_write.addr.eq(write_region * positions + self.write_position),
                         scale_write.data.mant.eq(scale_in.payload.mant),
                         scale_write.data.exp.eq(scale_in.payload.exp),
                         scale_write.en.eq(scale_in.valid)]
            with m.If(codes_in.valid):
                m.d.sync += beat.eq(beat + 1)
                with m.If(codes_in.payload.last):
                    m.d.sync += beat.eq(0)
            code_region, scale_region = ((values_region, value_scales_region) if name == "v"
                                         else (read_region, read_region))
            m.d.comb += [code_read.addr.eq(code_region * positions * words + codes_out.addr),
                         code_read.en.eq(codes_out.en), codes_out.data.eq(code_read.data),
                         scale_read.addr.eq(scale_region * positions + scales_out.addr),
                         scale_read.en.eq(scales_out.en), scales_out.data.eq(scale_read.data)]
        return m
