"""A BitLinear's matrix product with its weights on chip: ``acc = W_m · x`` for any of a model's
ternary matrices ``W_m``, fed from a weight ROM into a :class:`~hw.ternary_array.TernaryArray`
(one column: decode, one token at a time).

The ROM holds every matrix in the array's beat order (``tile_beats``): per tile of ``rows`` output
channels, ``ceil(K/simd)`` words of ``rows × simd`` 2-bit codes (``w + 1``; zero-padded to whole
tiles), the matrices one after another. One word per cycle is exactly what the array consumes,
so the array is fed every cycle.

``x`` loads the int8 activation vector into a buffer, ``simd`` per beat (``last`` on its final
beat); it stays there for any number of products (q, k and v share one ``x``; so do gate and up).
A ``start`` transfer names the matrix; ``o`` then carries its ``N`` accumulators in order,
``drain`` a transfer (``mask``: those of the matrix, the last tile's padded rows left out; a
transfer of padded rows only is dropped; ``last`` on the final one). One product at a time:
``start`` is taken again once the previous product's last result is out.

With ``x_part``, the buffer has no ``x`` stream: ``x_copy`` writes ``x_part`` codes of a word at
any time (its ``word``, the ``part`` of it and a ``mask`` of the codes), so a caller may keep a copy
of its codes there as it makes them; a product uses whatever the buffer holds when it starts, and
a caller must not write the buffer while a product runs.

With ``loaded=True`` the weight memory is a RAM filled after reset from the ``load`` stream, for
boards whose block RAM the bitstream cannot initialise (the iCE40 UP5K's SPRAM): an
:class:`~hw.flash_loader.FlashLoader` reads the words from SPI flash.

The weight memory (a ROM or RAM in block RAM) is split into columns of :data:`WEIGHT_COLUMN_BITS`,
each a memory of its own addressed by its own copy of the address register: on the ULX3S-85F one
address register fanned out to 114 block RAMs across the die, 16 ns of routing, the SoC's slowest
path (a copy per column drives 16). The copies count alike; each increments itself, so synthesis
cannot merge them. The read enable (the feed's skid buffer empty) is likewise a register a column,
each updated from its own value: one enable fanned out to every block RAM was the next slowest
path (13 ns of routing).
"""

from collections.abc import Sequence

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS

from .spram import Ice40Spram
from .ternary_array import TernaryArray, tile_beats

WEIGHT_COLUMN_BITS = 72     # two 36-bit block RAM columns (ECP5 DP16KD, Gowin BSRAM), no width lost


def weight_columns(word_bits: int) -> list[int]:
    """The widths of the weight memory's columns for ``word_bits``-bit words, low bits first."""
    full, rest = divmod(word_bits, WEIGHT_COLUMN_BITS)
    return [WEIGHT_COLUMN_BITS] * full + ([rest] if rest else [])


class TernaryLinear(wiring.Component):
    """``acc = W_m · x`` for any of the model's ternary matrices, its weights in a ROM (or a RAM
    filled from flash) feeding a one-column TernaryArray a word a cycle; :meth:`cycles` per matrix.
    ``busy`` is high from a ``start`` transfer until the product's last result is out; ``ready``
    (with ``loaded``) once the weight RAM is filled.

    Parameters
    ----------
    matrices : sequence of int arrays [N, K] with values in {-1, 0, +1}
        The ternary matrices, addressed by their index.
    rows, simd : int
        The TernaryArray's output channels and K-lanes per cycle.
    loaded : bool
        The weights are not built into the design: a RAM is filled after reset from ``load`` (the
        words of :meth:`weight_words`, in order); ``start`` waits for it.
    spram : bool
        With ``loaded``: the RAM is the iCE40 UP5K's SPRAM (:class:`~hw.spram.Ice40Spram`).
    x_part : int
        Codes a write through ``x_copy`` (a divisor of ``simd``); 0: the ``x`` stream loads the buffer.
    drain : int
        Results a transfer on ``o`` (a divisor of ``rows``: the array's ``drain``).
    """

    def __init__(self, matrices: Sequence[np.ndarray], *, rows: int, simd: int,
                 loaded: bool = False, spram: bool = False, x_part: int = 0, drain: int = 1):
        if not matrices:
            raise ValueError("at least one matrix is needed")
        shapes = []
        for index, w in enumerate(matrices):
            w = np.asarray(w)
            if w.ndim != 2 or not w.size or not np.isin(w, (-1, 0, 1)).all():
                raise ValueError(f"matrix {index} must be a non-empty 2-D array of -1, 0, +1")
            shapes.append(w.shape)
        k_max = max(k for _, k in shapes)
        self._array = TernaryArray(rows=rows, cols=1, simd=simd, k_max=max(k_max, simd), drain=drain)
        self._matrices = [np.asarray(w, dtype=np.int64) for w in matrices]
        self._shapes = shapes
        self._rows, self._simd = rows, simd
        self._k_words = [-(-k // simd) for _, k in shapes]
        self._tiles = [-(-n // rows) for n, _ in shapes]
        self._bases = np.cumsum([0] + [t * w for t, w in zip(self._tiles, self._k_words)]).tolist()
        if spram and not loaded:
            raise ValueError("spram needs loaded=True: the bitstream cannot initialise SPRAM")
        self._loaded, self._spram = loaded, spram
        if x_part and (x_part < 0 or simd % x_part):
            raise ValueError(f"x_part must divide simd {simd}, not {x_part}")
        self._x_part = x_part
        members = {"load": In(stream.Signature(self._array.w_layout)),
                   "ready": Out(1)} if loaded else {}
        x_port = In(stream.Signature(data.StructLayout({
            "data": data.ArrayLayout(signed(ACT_BITS), simd), "last": 1})))
        if x_part:
            x_port = In(data.StructLayout({
                "word": range(self.x_words), "part": range(simd // x_part), "mask": x_part,
                "data": data.ArrayLayout(signed(ACT_BITS), x_part)}))
        super().__init__({
            **members,
            "x_copy" if x_part else "x": x_port,
            "start": In(stream.Signature(range(len(matrices)))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(self._array.acc_width), drain), "mask": drain, "last": 1}))),
            "busy": Out(1),
        })
        # The product's progress (for the proofs: tests/hw/test_formal.py): its tiles and the tiles
        # whose words were issued, the array's output rows taken, and the feed's read (s1) and skid
        # stages' valid and ``last`` flags (a tile's last word). (Named as they were: the first of
        # each pair unnamed, so the netlist is unchanged.)
        tile_range = range(max(self._tiles) + 1)
        self.tiles, self.tile = Signal(tile_range), Signal(tile_range, name="tile")
        self.produced = Signal(range(max(t * rows for t in self._tiles) + 1), name="produced")
        self.s1_valid, self.s1_last = Signal(), Signal(name="s1_last")
        self.skid_valid, self.skid_last = Signal(), Signal(name="skid_last")

    shapes = property(lambda self: list(self._shapes))
    rows = property(lambda self: self._rows)
    simd = property(lambda self: self._simd)
    array = property(lambda self: self._array)             # its TernaryArray (for the proofs)
    drain = property(lambda self: self._array.drain)
    acc_width = property(lambda self: self._array.acc_width)
    x_words = property(lambda self: max(self._k_words))    # the activation buffer's words of simd codes
    rom_words = property(lambda self: self._bases[-1])
    rom_word_bits = property(lambda self: 2 * self._rows * self._simd)

    def weight_words(self) -> list[int]:
        """The weight memory's contents, word by word in address order (the ``load`` order), as
        integers of ``rom_word_bits`` bits."""
        layout = self._array.w_layout
        return [layout.const(codes).as_value().value for codes in self._word_codes()]

    def _word_codes(self) -> list:
        """Each weight word's codes (``rows × simd``), the matrices' tiles in beat order."""
        words = []
        for w in self._matrices:
            beats = tile_beats(w, np.zeros((w.shape[1], 1), dtype=np.int64), self._rows, 1, self._simd)
            words += [codes for codes, _, _ in beats]
        return words

    def _weight_memory(self, m, address, read_en, loading):
        """The weight ROM, or the RAM (``loaded``: memories, or the iCE40's SPRAM) with the load
        logic; the ``address`` and ``read_en`` copies (one a column, one for the SPRAM) for reads
        and writes, as a single-port RAM has. Returns the read data."""
        depth = self.rom_words
        if self._spram:
            m.submodules.weights = ram = Ice40Spram(width=self.rom_word_bits, depth=depth)
            m.d.comb += [ram.addr.eq(address[0]), ram.read_en.eq(read_en[0] & ~loading)]
            write_data, write_en, read_data = ram.write_data, ram.write_en, ram.read_data
        else:
            words = self.weight_words()
            read_data, write_data, write_en = Signal(self.rom_word_bits), Signal(self.rom_word_bits), Signal()
            low = 0
            for column, (width, column_address, column_en) in enumerate(
                    zip(weight_columns(self.rom_word_bits), address, read_en)):
                init = [] if self._loaded else [(w >> low) & ((1 << width) - 1) for w in words]
                weights = memory.Memory(shape=width, depth=depth, init=init)
                m.submodules[f"weights{column}"] = weights
                read = weights.read_port()
                m.d.comb += [read.addr.eq(column_address), read.en.eq(column_en),
                             read_data[low:low + width].eq(read.data)]
                if self._loaded:
                    write = weights.write_port()
                    m.d.comb += [write.addr.eq(column_address), write.data.eq(write_data[low:low + width]),
                                 write.en.eq(write_en)]
                low += width
        if self._loaded:
            self._load(m, write_data, write_en, address, depth, loading)
        return read_data

    def _load(self, m, write_data, write_en, address, depth, loading):
        """Fill the weight RAM from ``load``, one word a beat in address order, after reset."""
        m.d.comb += [self.load.ready.eq(loading), self.ready.eq(~loading),
                     write_data.eq(self.load.payload), write_en.eq(self.load.valid & loading)]
        with m.If(self.load.valid & loading):
            m.d.sync += [a.eq(a + 1) for a in address]
            with m.If(address[0] == depth - 1):
                m.d.sync += loading.eq(0)

    @property
    def latency(self) -> int:
        """Clock edges from the ``start`` transfer to the first weight word into the array (the
        array's own :attr:`~hw.ternary_array.TernaryArray.latency` follows)."""
        return self.latency_of()

    @staticmethod
    def latency_of() -> int:
        """:attr:`latency` without a unit: look the matrix up, read its first word."""
        return 2

    def cycles(self, index: int) -> int:
        """Clock edges from the ``start`` transfer to the last result's, with ``o`` always ready:
        :attr:`latency`, the array's cycles, less the last tile's transfers of padded rows only
        (dropped)."""
        n, k = self._shapes[index]
        padded = self._tiles[index] * self._rows - n
        return self.latency + self._array.cycles(n, k, 1) - padded // self.drain

    def result_cycles(self, index: int) -> list[int]:
        """:meth:`cycles` to each result of matrix ``index`` in turn (the last: :meth:`cycles`)."""
        return [self.latency + c for c in self._array.output_cycles(*self._shapes[index])]

    def elaborate(self, platform):
        m = Module()
        rows, simd = self._rows, self._simd
        m.submodules.array = array = self._array
        # the weight address, a copy a column (each counts by itself: see the module docstring)
        copies = 1 if self._spram else len(weight_columns(self.rom_word_bits))
        address = [Signal(range(self.rom_words + 1), name=f"address{c}") for c in range(copies)]
        # and the read enable (``advance``), a copy a column likewise
        read_en = [Signal(init=1, name=f"read_en{c}") for c in range(copies)]
        loading = Signal(init=self._loaded)      # the weight RAM is being filled from ``load``
        w_read_data = self._weight_memory(m, address, read_en, loading)
        m.submodules.x_buffer = x_buffer = memory.Memory(
            shape=data.ArrayLayout(signed(ACT_BITS), simd), depth=self.x_words, init=[])
        x_read = x_buffer.read_port()
        x_write = x_buffer.write_port(granularity=1 if self._x_part else None)    # a code an enable

        # -- x: load the activation vector, or take the caller's copy ---------------------------
        x_addr = Signal(range(self.x_words + 1))
        x_part = self._x_part
        if x_part:
            copy = self.x_copy
            m.d.comb += [x_write.addr.eq(copy.word),
                         x_write.data.eq(Cat(copy.data for _ in range(simd // x_part)))]
            with m.Switch(copy.part):
                for part in range(simd // x_part):
                    with m.Case(part):
                        m.d.comb += x_write.en.eq(copy.mask << (part * x_part))
        else:
            m.d.comb += [x_write.addr.eq(x_addr), x_write.data.eq(self.x.payload.data)]

        # -- the product's constants, chosen by the matrix index and registered in LOOKUP (they
        # feed the array's output ready and the feed's issue logic) ---------------------------------
        matrix = Signal(range(len(self._shapes)))
        base = Signal(range(self.rom_words + 1))
        k_words, k_words_of = Signal(range(max(self._k_words) + 1)), Signal(range(max(self._k_words) + 1))
        tiles, tiles_of = self.tiles, Signal(range(max(self._tiles) + 1))
        n_max = max(n for n, _ in self._shapes)
        n_out, n_out_of = Signal(range(n_max + 1)), Signal(range(n_max + 1))
        with m.Switch(matrix):
            for index, (n, _) in enumerate(self._shapes):
                with m.Case(index):
                    m.d.comb += [base.eq(self._bases[index]), k_words_of.eq(self._k_words[index]),
                                 tiles_of.eq(self._tiles[index]), n_out_of.eq(n)]

        # -- feed: address (word, tile) -> ROM and x buffer -> skid buffer -> array --------------
        # The ROM's read enable (a clock enable on every block RAM of the matrix) comes from one
        # register, never from the array's ready: a beat the array does not take waits in the skid
        # register while the read behind it completes, and the reads stop until it has left.
        tile = self.tile
        word = Signal(range(max(self._k_words) + 1))
        issue = Signal()
        advance = Signal()
        s1_valid, s1_last = self.s1_valid, self.s1_last
        skid_valid, skid_last = self.skid_valid, self.skid_last
        skid_w = Signal(len(Value.cast(w_read_data)), reset_less=True)    # (data: not reset, as the
        skid_x = Signal(len(Value.cast(x_read.data)), reset_less=True)    # array's datapath)
        taken = array.w.valid & array.w.ready
        m.d.comb += [advance.eq(~skid_valid),
                     x_read.addr.eq(word), x_read.en.eq(advance),
                     array.w.valid.eq(s1_valid | skid_valid), array.x.valid.eq(s1_valid | skid_valid),
                     array.w.payload.eq(Mux(skid_valid, skid_w, w_read_data)),
                     array.x.payload.data[0].eq(Mux(skid_valid, skid_x, x_read.data)),
                     array.x.payload.last.eq(Mux(skid_valid, skid_last, s1_last))]
        # The skid's data registers load whenever it is empty (their enable is a register, not
        # the array's ready); only its valid flag waits on the array.
        with m.If(~skid_valid):
            m.d.sync += [skid_last.eq(s1_last), skid_w.eq(w_read_data), skid_x.eq(x_read.data)]
        with m.If(skid_valid):
            with m.If(taken):
                m.d.sync += skid_valid.eq(0)
        with m.Elif(s1_valid & ~taken):
            m.d.sync += skid_valid.eq(1)
        for enable in read_en:                    # ~skid_valid, each copy from its own value
            with m.If(~enable):
                with m.If(taken):
                    m.d.sync += enable.eq(1)
            with m.Elif(s1_valid & ~taken):
                m.d.sync += enable.eq(0)
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(word == k_words - 1)]
            with m.If(issue):
                m.d.sync += [a.eq(a + 1) for a in address]
                with m.If(word == k_words - 1):
                    m.d.sync += [word.eq(0), tile.eq(tile + 1)]
                with m.Else():
                    m.d.sync += word.eq(word + 1)

        # -- results: the padded rows masked, and dropped where a transfer has only those ---------
        drain = self.drain
        produced = self.produced                  # rows before this transfer
        real = produced < n_out
        m.d.comb += [*(self.o.payload.data[j].eq(array.o.payload.data[j][0]) for j in range(drain)),
                     self.o.payload.mask.eq(Cat(produced + j < n_out for j in range(drain))),
                     self.o.payload.last.eq(produced + drain >= n_out),
                     self.o.valid.eq(array.o.valid & real),
                     array.o.ready.eq(self.o.ready | ~real)]
        with m.If(array.o.valid & array.o.ready):
            m.d.sync += produced.eq(produced + drain)

        with m.FSM() as fsm:
            m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
            with m.State("IDLE"):
                beat = Const(0) if x_part else self.x.valid     # an x beat first, then a start
                m.d.comb += self.start.ready.eq(~beat & ~loading)
                if not x_part:
                    m.d.comb += self.x.ready.eq(1)
                    with m.If(self.x.valid):
                        m.d.comb += x_write.en.eq(x_addr < self.x_words)
                        m.d.sync += x_addr.eq(x_addr + 1)
                        with m.If(self.x.payload.last):
                            m.d.sync += x_addr.eq(0)
                with m.If(self.start.valid & self.start.ready):
                    m.d.sync += [matrix.eq(self.start.payload), tile.eq(0), word.eq(0),
                                 produced.eq(0)]
                    m.next = "LOOKUP"
            with m.State("LOOKUP"):
                m.d.sync += [*(a.eq(base) for a in address), k_words.eq(k_words_of), tiles.eq(tiles_of),
                             n_out.eq(n_out_of)]
                m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += issue.eq(tile < tiles)
                with m.If(produced == tiles * rows):
                    m.next = "IDLE"
        return m
