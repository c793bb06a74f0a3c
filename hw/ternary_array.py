"""Ternary matmul array: ``Y[N×T] = W[N×K] · X[K×T]`` for ternary W and int8 X (docs/numerics.md §1).

Shape: an output-stationary grid of ``rows × cols`` processing elements, each a ``simd``-lane
ternary dot product feeding one accumulator. No multipliers and no per-lane negation: a lane
contributes ``a``, ``~a`` (= −a − 1) or 0, and each row adds its count of −1 weights once per beat
(shared by all columns); the adder tree has a register after every level (``LEVELS_PER_STAGE``:
two levels per stage saved flip-flops but cost ~15% more LUTs, as Yosys then builds the merged
additions from LUTs instead of carry chains). Rows are output channels, columns are tokens.

Data movement (one *beat* = one ``w`` and one ``x`` transfer, joined):

* ``x`` carries ``cols × simd`` activations (``simd`` consecutive K-elements of each of ``cols``
  tokens) and ``last``, which closes a tile (one ``rows × cols`` block of Y). A beat is registered
  once and broadcast to every row: no skew, so every row of a tile finishes in the same cycle.
* ``w`` carries ``rows × simd`` 2-bit weight codes (``w + 1``, the packed-checkpoint code; code 3 acts
  as 0), row ``r``'s to row ``r``.
* ``o`` emits a finished tile ``drain`` rows a transfer, rows in order: ``data[j]`` holds the ``cols``
  exact accumulators (``acc_width`` bits, derived from ``k_max``) of row ``row + j``; ``last`` on the
  tile's final transfer. A tile drains in ``rows / drain`` transfers.

A tile finishes into one of two banks of result registers while ``o`` drains the other.

Backpressure: the whole array advances together. It stops only when a tile is about to finish into
a bank that is still full at the start of the cycle. The array-wide stall, whose fanout is every
pipeline register, is itself a register: the cycle before, its input is formed from the next states
(where ``o.ready`` enters), so the net to thousands of clock enables starts at a flip-flop that the
placer puts among them. Inputs are then not accepted (``ready`` low). No result is lost or
duplicated however ``o.ready`` and the input ``valid``\\ s behave.

Latency: a tile's first transfer is presented on ``o`` ``latency = 2 + max(1, ceil(log2(simd)))``
cycles after its last beat is accepted. Throughput: one beat per cycle while a tile has at least
``rows / drain`` beats (``ceil(K/simd) >= rows / drain``); shorter tiles are limited by the transfers
``o`` needs to drain each. :meth:`cycles` gives the count for a whole matmul; :func:`tile_beats`
produces the beat sequence (zero-padded tiles) and :func:`assemble` puts the outputs back into ``Y``.
"""

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Assert
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from model.numerics import WEIGHT_CODE_BITS, acc_bits

from .arith import check_integers

CODE_MINUS, CODE_ZERO, CODE_PLUS = 0, 1, 2   # stored code = w + 1
LEVELS_PER_STAGE = 1                         # adder-tree levels between pipeline registers


class TernaryArray(wiring.Component):
    """``rows × cols`` PEs of ``simd`` ternary lanes each, a weight word and an activation beat a
    cycle; :attr:`latency` from a tile's last beat to its first transfer, :meth:`cycles` per product.

    Parameters
    ----------
    rows : int
        Output channels computed in parallel.
    cols : int
        Tokens computed in parallel (1 for decode / GEMV).
    simd : int
        K-lanes per PE, a power of two.
    k_max : int
        Largest reduction length K; the accumulator width is derived from it.
    act_width : int
        Activation width in bits (8 for BitNet b1.58).
    drain : int
        Rows a transfer on ``o`` (a divisor of ``rows``).
    assertions : bool
        Add ``Assert`` statements (simulation and formal only) that no accumulator addition
        overflows; with at most ``ceil(k_max/simd)`` beats per tile none can.
    """

    def __init__(self, *, rows: int, cols: int, simd: int, k_max: int, act_width: int = 8,
                 drain: int = 1, assertions: bool = False):
        check_integers((("rows", rows), ("cols", cols), ("simd", simd), ("k_max", k_max),
                        ("act_width", act_width), ("drain", drain)))
        if rows % drain:
            fits = [d for d in range(1, rows + 1) if rows % d == 0]
            raise ValueError(f"drain must divide rows {rows}, not {drain}; {fits} would fit")
        if simd & (simd - 1):
            lower = 1 << (simd.bit_length() - 1)
            raise ValueError(f"simd must be a power of two (adder tree), not {simd}; "
                             f"{lower} or {lower * 2} would fit")
        if act_width < 2:
            raise ValueError(f"act_width must be at least 2 bits, not {act_width}")
        if k_max < simd:
            raise ValueError(f"k_max ({k_max}) must be at least simd ({simd})")
        self._rows, self._cols, self._simd, self._drain = rows, cols, simd, drain
        self._k_max, self._act_width, self._assertions = k_max, act_width, assertions
        self._acc_width = acc_bits(k_max, act_width)
        if self._acc_width > 48:
            raise ValueError(f"k_max {k_max} needs a {self._acc_width}-bit accumulator; at most 48 "
                             f"bits are supported (k_max <= {(1 << (48 - act_width)) - 1})")
        super().__init__({
            "w": In(stream.Signature(self.w_layout)),
            "x": In(stream.Signature(self.x_layout)),
            "o": Out(stream.Signature(self.o_layout)),
        })
        # Where a tile is (for the proofs: tests/hw/test_formal.py): the registered beat's valid flag
        # (and the beat: its ``last``), each adder-tree stage's valid and last flags, the banks' full
        # flags, the bank the next tile finishes into and ``o``'s bank, and ``o``'s group of rows in
        # it; whether the pipeline moves (``advance``); once elaborated, the ``accumulators``.
        # (``fill`` unnamed, as it was: the netlist is unchanged.)
        self.x_valid = Signal(name="x_valid")
        self.x_in = Signal(self.x_layout, reset_less=True, name="x_in")
        self.stage_valid = [Signal(name=f"valid_s{s}") for s in range(self.tree_stages)]
        self.stage_last = [Signal(name=f"last_s{s}") for s in range(self.tree_stages)]
        self.full = [Signal(name=f"full{b}") for b in range(2)]
        self.fill, self.read = Signal(), Signal(name="read")
        self.group = Signal(range(self.groups), name="group")
        self.advance = Signal(init=1)

    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)
    simd = property(lambda self: self._simd)
    drain = property(lambda self: self._drain)
    groups = property(lambda self: self._rows // self._drain)     # transfers a tile on ``o``
    k_max = property(lambda self: self._k_max)
    act_width = property(lambda self: self._act_width)
    acc_width = property(lambda self: self._acc_width)

    @property
    def w_layout(self):
        return data.ArrayLayout(data.ArrayLayout(unsigned(WEIGHT_CODE_BITS), self._simd), self._rows)

    @property
    def x_layout(self):
        return data.StructLayout({
            "data": data.ArrayLayout(data.ArrayLayout(signed(self._act_width), self._simd), self._cols),
            "last": 1,
        })

    @property
    def o_layout(self):
        return data.StructLayout({
            "data": data.ArrayLayout(data.ArrayLayout(signed(self._acc_width), self._cols), self._drain),
            "row": range(self._rows),
            "last": 1,
        })

    @property
    def tree_levels(self) -> int:
        return ceil_log2(self._simd)

    @property
    def tree_stages(self) -> int:
        """Pipeline registers through the products and adder tree (at least one)."""
        return max(1, -(-self.tree_levels // LEVELS_PER_STAGE))

    @property
    def latency(self) -> int:
        """Cycles from accepting a tile's last beat to its first transfer on ``o``."""
        return self.latency_of(self._simd)

    @staticmethod
    def latency_of(simd: int) -> int:
        """:attr:`latency` of an array ``simd`` lanes wide (for a cycle model without an array)."""
        return 2 + max(1, -(-ceil_log2(simd) // LEVELS_PER_STAGE))

    @property
    def lanes(self) -> int:
        return self._rows * self._cols * self._simd

    def cycles(self, n: int, k: int, t: int) -> int:
        """Cycles from the first beat accepted to the last output transfer, with no stalls from
        outside: tiles start every max(ceil(k/simd), rows/drain) cycles, the last drains in
        rows/drain cycles."""
        tiles = -(-n // self._rows) * -(-t // self._cols)
        chunks = -(-k // self._simd)
        return (tiles - 1) * max(chunks, self.groups) + chunks + self.latency + self.groups - 1

    def output_cycles(self, n: int, k: int) -> list[int]:
        """:meth:`cycles` to each of one column's ``n`` outputs in turn (tile by tile, ``drain`` rows
        a cycle), the last :meth:`cycles` less the last tile's padded transfers."""
        chunks = -(-k // self._simd)
        period = max(chunks, self.groups)
        return [tile * period + chunks + self.latency + row // self._drain
                for tile, row in (divmod(j, self._rows) for j in range(n))]

    def elaborate(self, platform):
        m = Module()
        rows, cols, simd, levels = self._rows, self._cols, self._simd, self.tree_levels
        groups, drain = self.groups, self._drain

        advance = self.advance      # every pipeline register moves this cycle (a register)
        beat = Signal()             # a joined w/x beat enters this cycle
        m.d.comb += [
            self.w.ready.eq(advance & self.x.valid),
            self.x.ready.eq(advance & self.w.valid),
            beat.eq(advance & self.w.valid & self.x.valid),
        ]

        # The beat, registered once and broadcast to every row. The datapath's registers (the beat,
        # the adder tree, the accumulators and results) are not reset: their valid flags are, and
        # the reset net, left to reach thousands of them across the die, was the ULX3S-85F's slowest
        # path (17.9 ns of routing).
        x_in = self.x_in
        w_in = Signal(self.w_layout, reset_less=True)
        x_valid = self.x_valid
        with m.If(advance):
            m.d.sync += [x_in.eq(self.x.payload), w_in.eq(self.w.payload), x_valid.eq(beat)]

        # The beat's progress through the adder tree: one valid and last flag for all rows.
        stages = self.tree_stages
        valid, last = self.stage_valid, self.stage_last
        with m.If(advance):
            m.d.sync += [valid[0].eq(x_valid), last[0].eq(x_in.last)]
            m.d.sync += [valid[s].eq(valid[s - 1]) for s in range(1, stages)]
            m.d.sync += [last[s].eq(last[s - 1]) for s in range(1, stages)]
        finishing = Signal()        # every row's tile total is made this cycle (if it advances)
        m.d.comb += finishing.eq(valid[-1] & last[-1])

        # Two banks of result registers: a tile finishes into one while ``o`` drains the other,
        # ``drain`` rows a transfer.
        result = [[Signal(data.ArrayLayout(signed(self._acc_width), cols), name=f"result{b}_row{r}",
                          reset_less=True) for r in range(rows)] for b in range(2)]
        full = self.full
        fill, read = self.fill, self.read        # the bank the next tile finishes into; o's bank
        group = self.group                       # o's group of rows in its bank
        take = Signal()
        emptied = Signal()                       # o takes its bank's last group this cycle
        m.d.comb += [take.eq(self.o.valid & self.o.ready), emptied.eq(take & (group == groups - 1))]

        # each row's and column's accumulator, by row then column (for the proofs; made here, at
        # the width the array has when elaborated)
        self.accumulators = [[Signal(signed(self._acc_width), name=f"acc_r{r}_c{c}") for c in range(cols)]
                             for r in range(rows)]
        for r in range(rows):
            # Products need no carry chain: a -1 lane contributes ~a (= -a - 1), a 0 lane (or the
            # unused code 3) contributes 0, and the row adds its count of -1 lanes once, for all
            # columns (it depends on the weights only). The adder tree is registered every
            # ``LEVELS_PER_STAGE`` levels; the products themselves only when there is no tree.
            negatives = Cat(*(w_in[r][s] == CODE_MINUS for s in range(simd)))
            count = [Signal(range(simd + 1), name=f"negatives_row{r}_s{s}", reset_less=True)
                     for s in range(stages)]
            with m.If(advance):
                m.d.sync += count[0].eq(sum(negatives[s] for s in range(simd)))
                m.d.sync += [count[s].eq(count[s - 1]) for s in range(1, stages)]
            for c in range(cols):
                level = []
                for s in range(simd):
                    a, code = x_in.data[c][s], w_in[r][s]
                    p = Signal(signed(self._act_width), name=f"p_r{r}_c{c}_l{s}")
                    m.d.comb += p.eq(Mux(code == CODE_PLUS, a, Mux(code == CODE_MINUS, ~a, 0)))
                    level.append(p)
                if levels == 0:
                    registered = Signal(signed(self._act_width), name=f"sum_r{r}_c{c}", reset_less=True)
                    with m.If(advance):
                        m.d.sync += registered.eq(level[0])
                    level = [registered]
                for depth in range(levels):
                    registered = (depth + 1) % LEVELS_PER_STAGE == 0 or depth == levels - 1
                    nxt = []
                    for i in range(0, len(level), 2):
                        t = Signal(signed(self._act_width + 1 + depth),
                                   name=f"sum_r{r}_c{c}_d{depth}_{i // 2}", reset_less=True)
                        if registered:
                            with m.If(advance):
                                m.d.sync += t.eq(level[i] + level[i + 1])
                        else:
                            m.d.comb += t.eq(level[i] + level[i + 1])
                        nxt.append(t)
                    level = nxt
                total = level[0] + count[-1]

                # Accumulate; on a tile's last beat hand the total to the filling bank.
                acc = self.accumulators[r][c]
                if self._assertions:
                    checked = Signal(signed(self._acc_width + 1), name=f"total_r{r}_c{c}")
                    limit = 1 << (self._acc_width - 1)
                    m.d.comb += checked.eq(acc + total)
                    with m.If(advance & valid[-1]):
                        m.d.comb += Assert((checked >= -limit) & (checked < limit),
                                           f"accumulator row {r} column {c} overflows")
                with m.If(advance & valid[-1]):
                    with m.If(last[-1]):
                        m.d.sync += acc.eq(0)
                        for b in range(2):
                            with m.If(fill == b):
                                m.d.sync += result[b][r][c].eq(acc + total)
                    with m.Else():
                        m.d.sync += acc.eq(acc + total)

        # The banks' flags, and the stall: the array stops only when a tile is about to finish into
        # a bank that is still full at the start of the cycle (even if ``o`` empties it in that
        # cycle: the stall is then one cycle longer, hidden by the other bank). The array-wide
        # stall, whose fanout is every pipeline register, is itself a register: the cycle before,
        # its input is formed from the next states (where ``o.ready`` enters), so the net to
        # thousands of clock enables starts at a flip-flop that the placer puts among them.
        finished = advance & finishing
        full_next = [Signal(name=f"full{b}_next") for b in range(2)]
        for b in range(2):
            m.d.comb += full_next[b].eq(Mux(finished & (fill == b), 1,
                                            Mux(emptied & (read == b), 0, full[b])))
            m.d.sync += full[b].eq(full_next[b])
        fill_next = Mux(finished, ~fill, fill)
        finishing_next = Mux(advance, valid[-2] & last[-2] if stages > 1 else x_valid & x_in.last,
                             finishing)
        m.d.sync += [fill.eq(fill_next),
                     advance.eq(~(finishing_next & Mux(fill_next, full_next[1], full_next[0])))]

        # Emit the read bank ``drain`` rows a transfer, in row order.
        with m.Switch(Cat(group, read)):
            for b in range(2):
                for g in range(groups):
                    with m.Case(g | (b << len(group))):
                        m.d.comb += [self.o.payload.data[j].eq(result[b][g * drain + j])
                                     for j in range(drain)]
        m.d.comb += [
            self.o.valid.eq(Mux(read, full[1], full[0])),
            self.o.payload.row.eq(group * drain),
            self.o.payload.last.eq(group == groups - 1),
        ]
        with m.If(take):
            m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
        with m.If(emptied):
            m.d.sync += read.eq(~read)
        return m


def tile_beats(weights: np.ndarray, acts: np.ndarray, rows: int, cols: int, simd: int):
    """The beats that compute ``weights [N×K] (ternary) · acts [K×T] (int)``, zero-padded to whole
    tiles: a list of ``(w_codes [rows][simd], x [cols][simd], last)``, tiles in row-major order
    (all column tiles of row tile 0 first)."""
    n, k = weights.shape
    k2, t = acts.shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: W is {n}x{k}, X is {k2}x{t}")
    n_pad, k_pad, t_pad = -(-n // rows) * rows, -(-k // simd) * simd, -(-t // cols) * cols
    w = np.zeros((n_pad, k_pad), dtype=np.int64)
    w[:n, :k] = weights
    x = np.zeros((k_pad, t_pad), dtype=np.int64)
    x[:k, :t] = acts
    codes = w + 1
    beats = []
    for r0 in range(0, n_pad, rows):
        for c0 in range(0, t_pad, cols):
            for k0 in range(0, k_pad, simd):
                beats.append((codes[r0:r0 + rows, k0:k0 + simd].tolist(),
                              x[k0:k0 + simd, c0:c0 + cols].T.tolist(),
                              k0 + simd == k_pad))
    return beats


def assemble(outputs, n: int, t: int, rows: int, cols: int) -> np.ndarray:
    """Y [n×t] from the array's transfers on ``o`` (``(row, data[drain][cols])`` in emission order)."""
    n_pad, t_pad = -(-n // rows) * rows, -(-t // cols) * cols
    y = np.zeros((n_pad, t_pad), dtype=np.int64)
    tiles = [(r0, c0) for r0 in range(0, n_pad, rows) for c0 in range(0, t_pad, cols)]
    drain = len(outputs[0][1]) if outputs else 1
    if len(outputs) * drain != len(tiles) * rows:
        raise ValueError(f"expected {len(tiles) * rows // drain} transfers, got {len(outputs)}")
    for i, (row, values) in enumerate(outputs):
        r0, c0 = tiles[i * drain // rows]
        if row != i * drain % rows:
            raise ValueError(f"transfer {i} starts at row {row}, expected row {i * drain % rows}")
        y[r0 + row:r0 + row + drain, c0:c0 + cols] = values
    return y[:n, :t]
