"""Rotary position embedding of one head at a time, exactly ``model.numerics.rope_rotate``
(docs/numerics.md §5).

A head's ``head_dim`` accumulators arrive on ``i`` ``lanes`` a beat, in order; the first half is
``a``, the second ``b`` (HF's rotate_half layout: element ``j`` pairs with ``j + head_dim/2``). ``o``
emits the rotated head in the same order, ``lanes`` elements a beat, each beat of ``a'_j`` as soon as
its ``b_j`` beat is in (the first half overlaps the second half's arrival), then the ``b'_j``:
``a'_j = (a_j·cos_j − b_j·sin_j + 2^13) >> 14`` then ``b'_j = (b_j·cos_j + a_j·sin_j + 2^13) >> 14``,
with ``cos``/``sin`` of the current ``position`` from Q1.14 tables (``model.numerics.rope_int_tables``,
in on-chip ROM: ``2 × positions × head_dim/2`` 16-bit entries, ``lanes`` a word). ``last`` marks a
head's final beat. ``position`` must hold while a head is in flight.

Throughput: a beat a cycle (four multipliers a lane): the head buffers have two banks, so the next
head is taken while one is emitted (``position`` must then hold for both). **Latency** ``latency``
cycles from the transfer of a head's beat ``beats/2`` (its first ``b``) to its first output being
offered, the previous head emitted; with the input a beat a cycle the last output follows the last
input by ``latency + beats/2`` (``beats = head_dim/lanes``).
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ROPE_BITS, ROPE_FRAC, rope_int_tables

from .arith import bank_address, check_integers, read_pass


class Rope(wiring.Component):
    """Rotary position embedding of one head at a time (``model.numerics.rope_rotate``), ``lanes``
    elements a beat; :attr:`latency` cycles from a head's first ``b`` beat to its first output.

    Parameters
    ----------
    width : int
        Signed width of the accumulators (2 to 40 bits); outputs are ``width + 1`` bits.
    head_dim : int
        Elements per head (even).
    positions : int
        Table length (the model's context).
    theta : float
        RoPE base.
    lanes : int
        Elements a beat (dividing ``head_dim/2``).
    """

    @staticmethod
    def latency_of() -> int:
        """Cycles from a head's first ``b`` beat to its first output: the beat stored, start,
        read, read registered, products, sum."""
        return 6

    latency = property(lambda self: self.latency_of())

    def __init__(self, *, width: int, head_dim: int, positions: int, theta: float, lanes: int = 1):
        check_integers((("width", width, 2, 40), ("head_dim", head_dim, 2, 1024),
                        ("positions", positions, 1, 1 << 16), ("lanes", lanes, 1, 64)))
        if head_dim % 2:
            raise ValueError(f"head_dim must be even (rotate_half pairs), not {head_dim}")
        if (head_dim // 2) % lanes:
            raise ValueError(f"lanes must divide head_dim/2 = {head_dim // 2}, not {lanes}")
        if not theta > 0:
            raise ValueError(f"theta must be positive, not {theta!r}")
        self._width, self._head_dim, self._positions, self._theta = width, head_dim, positions, theta
        self._lanes = lanes
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(width), lanes))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width + 1), lanes), "last": 1}))),
            "position": In(range(positions)),
        })

    lanes = property(lambda self: self._lanes)
    width = property(lambda self: self._width)
    head_dim = property(lambda self: self._head_dim)
    positions = property(lambda self: self._positions)

    def elaborate(self, platform):
        m = Module()
        width, lanes = self._width, self._lanes
        half = self._head_dim // lanes // 2              # beats a half head
        beats = 2 * half
        cos, sin = rope_int_tables(self._head_dim, self._theta, self._positions)
        tables = {}
        for name, table in (("cos", cos), ("sin", sin)):
            tables[name] = memory.Memory(shape=data.ArrayLayout(signed(ROPE_BITS), lanes),
                                         depth=table.size // lanes,
                                         init=[[int(v) for v in word] for word in table.reshape(-1, lanes)])
            m.submodules[f"{name}_table"] = tables[name]
        # Two banks: a head is taken into one while the previous one is emitted from the other.
        word = data.ArrayLayout(signed(width), lanes)
        m.submodules.a_buffer = a_buffer = memory.Memory(shape=word, depth=2 * half, init=[])
        m.submodules.b_buffer = b_buffer = memory.Memory(shape=word, depth=2 * half, init=[])
        a_write, b_write = a_buffer.write_port(), b_buffer.write_port()
        a_read, b_read = a_buffer.read_port(), b_buffer.read_port()
        cos_read, sin_read = tables["cos"].read_port(), tables["sin"].read_port()

        taken = Signal(range(beats + 1))        # beats of the head stored
        emit = Signal(range(beats + 1))         # next output beat to read
        issue = Signal()
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        pair = Signal(range(half))
        m.d.comb += pair.eq(Mux(emit >= half, emit - half, emit))
        table_addr = self.position * half + pair
        write_bank, read_bank, full = Signal(), Signal(), Signal(2)
        for port in (a_read, b_read):
            m.d.comb += [port.addr.eq(bank_address(read_bank, half, pair)), port.en.eq(advance)]
        for port in (cos_read, sin_read):
            m.d.comb += [port.addr.eq(table_addr), port.en.eq(advance)]

        # read (memories) -> registered -> products (register) -> sum and round (output register):
        # the block-RAM reads have a cycle of their own before the multipliers
        s1_valid, s1_second, s1_last = Signal(), Signal(), Signal()
        s2_valid, s2_second, s2_last = Signal(), Signal(), Signal()
        s3_valid, s3_second, s3_last = Signal(), Signal(), Signal()
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_second.eq(emit >= half), s1_last.eq(emit == beats - 1),
                         s2_valid.eq(s1_valid), s2_second.eq(s1_second), s2_last.eq(s1_last),
                         s3_valid.eq(s2_valid), s3_second.eq(s2_second), s3_last.eq(s2_last),
                         self.o.valid.eq(s3_valid), self.o.payload.last.eq(s3_last)]
        product_bits = width + ROPE_BITS
        for lane in range(lanes):
            # (the data registers are not reset: the stages' flags are)
            a1, b1 = (Signal(signed(width), name=f"{n}1_{lane}", reset_less=True) for n in "ab")
            cos1, sin1 = (Signal(signed(ROPE_BITS), name=f"{n}1_{lane}", reset_less=True)
                          for n in ("cos", "sin"))
            a_cos, b_sin, b_cos, a_sin = (Signal(signed(product_bits), name=f"{n}_{lane}", reset_less=True)
                                          for n in ("a_cos", "b_sin", "b_cos", "a_sin"))
            with m.If(advance):
                m.d.sync += [a1.eq(a_read.data[lane]), b1.eq(b_read.data[lane]),
                             cos1.eq(cos_read.data[lane]), sin1.eq(sin_read.data[lane]),
                             a_cos.eq(a1 * cos1), b_sin.eq(b1 * sin1),
                             b_cos.eq(b1 * cos1), a_sin.eq(a1 * sin1)]
                total = Mux(s3_second, b_cos + a_sin, a_cos - b_sin) + (1 << (ROPE_FRAC - 1))
                m.d.sync += self.o.payload.data[lane].eq(total >> ROPE_FRAC)

        # -- take: a head into the write bank, while that bank is free ---------------------------
        m.d.comb += self.i.ready.eq(~full.bit_select(write_bank, 1))
        with m.If(self.i.valid & self.i.ready):
            with m.If(taken < half):
                m.d.comb += [a_write.addr.eq(bank_address(write_bank, half, taken)),
                             a_write.data.eq(self.i.payload), a_write.en.eq(1)]
            with m.Else():
                m.d.comb += [b_write.addr.eq(bank_address(write_bank, half, taken - half)),
                             b_write.data.eq(self.i.payload), b_write.en.eq(1)]
            m.d.sync += taken.eq(taken + 1)
            with m.If(taken == beats - 1):
                m.d.sync += [taken.eq(0), write_bank.eq(~write_bank)]
        filled = (self.i.valid & self.i.ready & (taken == beats - 1)).as_unsigned() << write_bank
        emptied = Signal(2)

        # -- emit: the read bank's head, a'_j once b_j is stored (the head may still be arriving
        # in that bank), the b'_j once it is full ------------------------------------------------
        arriving = (read_bank == write_bank) & ~full.bit_select(read_bank, 1)
        readable = Signal()
        m.d.comb += readable.eq(full.bit_select(read_bank, 1)
                                | (arriving & (emit < half) & (emit + half < taken)))
        with m.FSM():
            with m.State("WAIT"):
                with m.If(full.bit_select(read_bank, 1) | (arriving & (taken > half))):
                    m.d.sync += emit.eq(0)
                    m.next = "EMIT"
            with m.State("EMIT"):
                with m.If(read_pass(m, issue, emit, beats, advance, (s1_valid, s2_valid), readable)):
                    m.d.comb += emptied.eq(1 << read_bank)
                    m.d.sync += read_bank.eq(~read_bank)
                    m.next = "WAIT"
        m.d.sync += full.eq((full | filled) & ~emptied)
        return m
