"""Ternary matmul array: ``Y[N×T] = W[N×K] · X[K×T]`` for ternary W and int8 X (docs/numerics.md §1).

Shape: an output-stationary grid of ``rows × cols`` processing elements, each a ``simd``-lane
ternary dot product feeding one accumulator. No multipliers and no per-lane negation: a lane
contributes ``a``, ``~a`` (= −a − 1) or 0, and each row adds its count of −1 weights once per beat
(shared by all columns); the adder tree has a register after every level (``LEVELS_PER_STAGE``:
two levels per stage saved flip-flops but cost ~15% more LUTs, as Yosys then builds the merged
additions from LUTs instead of carry chains). Rows are output channels, columns are tokens.

Data movement (one *beat* = one ``w`` and one ``x`` transfer, joined):

* ``x`` carries ``cols × simd`` activations (``simd`` consecutive K-elements of each of ``cols``
  tokens) and ``last``, which closes a tile (one ``rows × cols`` block of Y). Activations flow
  systolically: row ``r`` sees a beat ``r`` cycles after row 0.
* ``w`` carries ``rows × simd`` 2-bit weight codes (``w + 1``, the packed-checkpoint code; code 3 acts
  as 0). Row ``r``'s codes pass through an ``r``-deep delay line so they meet their activations.
* ``o`` emits one transfer per row of a finished tile, rows in order ``0 … rows-1``: ``cols`` exact
  accumulators (``acc_width`` bits, derived from ``k_max``), the ``row`` index and ``last`` on the
  final row. Rows finish one cycle apart, so a tile drains in ``rows`` cycles.

Backpressure: the whole array advances together. It stops only when a row is about to finish into a
result register that is still full at the start of the cycle (even if ``o`` empties it in that
cycle: the stall is then one cycle longer). The array-wide stall, whose fanout is every pipeline
register, is itself a register: the cycle before, its input is formed from the rows' next states
(where ``o.ready`` enters), so the net to thousands of clock enables starts at a flip-flop that the
placer puts among them. Inputs are then not accepted (``ready`` low). A tile's last beat is admitted only ``rows`` cycles after the previous tile's, so that stall
can never wait on a row that is itself stalled. No result is lost or duplicated however ``o.ready``
and the input ``valid``\\ s behave.

Latency: the row-0 result of a tile is presented on ``o`` ``latency = 2 + max(1, ceil(log2(simd)))`` cycles
after the tile's last beat is accepted. Throughput: one beat per cycle while a tile has at least
``rows`` beats (``ceil(K/simd) >= rows``); shorter tiles are limited by the ``rows`` cycles ``o`` needs
to drain each. :meth:`cycles` gives the count for a whole matmul; :func:`tile_beats` produces the beat
sequence (zero-padded tiles) and :func:`assemble` puts the outputs back into ``Y``.
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
    cycle; :attr:`latency` from a tile's last beat to its row-0 result, :meth:`cycles` per product.

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
    assertions : bool
        Add ``Assert`` statements (simulation and formal only) that no accumulator addition
        overflows; with at most ``ceil(k_max/simd)`` beats per tile none can.
    """

    def __init__(self, *, rows: int, cols: int, simd: int, k_max: int, act_width: int = 8,
                 assertions: bool = False):
        check_integers((("rows", rows), ("cols", cols), ("simd", simd), ("k_max", k_max),
                        ("act_width", act_width)))
        if simd & (simd - 1):
            lower = 1 << (simd.bit_length() - 1)
            raise ValueError(f"simd must be a power of two (adder tree), not {simd}; "
                             f"{lower} or {lower * 2} would fit")
        if act_width < 2:
            raise ValueError(f"act_width must be at least 2 bits, not {act_width}")
        if k_max < simd:
            raise ValueError(f"k_max ({k_max}) must be at least simd ({simd})")
        self._rows, self._cols, self._simd = rows, cols, simd
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

    rows = property(lambda self: self._rows)
    cols = property(lambda self: self._cols)
    simd = property(lambda self: self._simd)
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
            "data": data.ArrayLayout(signed(self._acc_width), self._cols),
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
        """Cycles from accepting a tile's last beat to its row-0 result on ``o``."""
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
        outside: tiles start every max(ceil(k/simd), rows) cycles, the last drains in rows cycles."""
        tiles = -(-n // self._rows) * -(-t // self._cols)
        chunks = -(-k // self._simd)
        return (tiles - 1) * max(chunks, self._rows) + chunks + self.latency + self._rows - 1

    def output_cycles(self, n: int, k: int) -> list[int]:
        """:meth:`cycles` to each of one column's ``n`` outputs in turn (tile by tile, a row a
        cycle), the last :meth:`cycles` less the last tile's padded rows."""
        chunks = -(-k // self._simd)
        period = max(chunks, self._rows)
        return [tile * period + chunks + self.latency + row
                for tile, row in (divmod(j, self._rows) for j in range(n))]

    def elaborate(self, platform):
        m = Module()
        rows, cols, simd, levels = self._rows, self._cols, self._simd, self.tree_levels

        advance = Signal(init=1)    # every pipeline register moves this cycle (a register)
        beat = Signal()             # a joined w/x beat enters this cycle

        # A tile's last beat enters only ``rows`` advancing cycles after the previous one: then
        # every row has finished tile j before any row finishes tile j+1, so a full result register
        # can only wait on ``o``, never on a row still in the pipeline (which the global stall
        # would freeze: a deadlock when tiles are shorter than ``rows`` beats).
        since_tile_end = Signal(range(rows), init=rows - 1)
        admit = Signal()
        m.d.comb += [
            admit.eq(~self.x.payload.last | (since_tile_end == rows - 1)),
            self.w.ready.eq(advance & self.x.valid & admit),
            self.x.ready.eq(advance & self.w.valid & admit),
            beat.eq(advance & self.w.valid & self.x.valid & admit),
        ]
        with m.If(advance):
            with m.If(beat & self.x.payload.last):
                m.d.sync += since_tile_end.eq(0)
            with m.Elif(since_tile_end != rows - 1):
                m.d.sync += since_tile_end.eq(since_tile_end + 1)

        # Activations flow down the rows; each row's weights wait in a delay line as deep as its row.
        # The datapath's registers (activations, weights, the adder tree, the results) are not reset:
        # their valid flags are, and the reset net, left to reach thousands of them across the die,
        # was the ULX3S-85F's slowest path (17.9 ns of routing).
        x_regs = [Signal(self.x_layout, name=f"x_row{r}", reset_less=True) for r in range(rows)]
        x_valid = [Signal(name=f"x_valid_row{r}") for r in range(rows)]
        w_regs = []
        for r in range(rows):
            line = [Signal(data.ArrayLayout(unsigned(WEIGHT_CODE_BITS), simd), name=f"w_row{r}_d{d}",
                           reset_less=True) for d in range(r + 1)]
            with m.If(advance):
                m.d.sync += line[0].eq(self.w.payload[r])
                m.d.sync += [line[d].eq(line[d - 1]) for d in range(1, r + 1)]
            w_regs.append(line[-1])
        with m.If(advance):
            m.d.sync += [x_regs[0].eq(self.x.payload), x_valid[0].eq(beat)]
            for r in range(1, rows):
                m.d.sync += [x_regs[r].eq(x_regs[r - 1]), x_valid[r].eq(x_valid[r - 1])]

        # Results wait here until ``o`` takes them, in row order.
        result = [Signal(data.ArrayLayout(signed(self._acc_width), cols), name=f"result_row{r}",
                         reset_less=True) for r in range(rows)]
        result_valid = [Signal(name=f"result_valid_row{r}") for r in range(rows)]
        out_row = Signal(range(rows))
        take = Signal()
        stalls_next = []            # a row about to finish into a full result register, next cycle

        for r in range(rows):
            # Products need no carry chain: a -1 lane contributes ~a (= -a - 1), a 0 lane (or the
            # unused code 3) contributes 0, and the row adds its count of -1 lanes once, for all
            # columns (it depends on the weights only). The adder tree is registered every
            # ``LEVELS_PER_STAGE`` levels; the products themselves only when there is no tree.
            stages = self.tree_stages
            valid = [Signal(name=f"v_row{r}_s{s}") for s in range(stages)]
            last = [Signal(name=f"last_row{r}_s{s}") for s in range(stages)]
            with m.If(advance):
                m.d.sync += [valid[0].eq(x_valid[r]), last[0].eq(x_regs[r].last)]
                m.d.sync += [valid[s].eq(valid[s - 1]) for s in range(1, stages)]
                m.d.sync += [last[s].eq(last[s - 1]) for s in range(1, stages)]
            negatives = Cat(*(w_regs[r][s] == CODE_MINUS for s in range(simd)))
            count = [Signal(range(simd + 1), name=f"negatives_row{r}_s{s}", reset_less=True)
                     for s in range(stages)]
            with m.If(advance):
                m.d.sync += count[0].eq(sum(negatives[s] for s in range(simd)))
                m.d.sync += [count[s].eq(count[s - 1]) for s in range(1, stages)]
            sums = []
            for c in range(cols):
                level = []
                for s in range(simd):
                    a, code = x_regs[r].data[c][s], w_regs[r][s]
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
                sums.append(level[0] + count[-1])

            # Accumulate; on a tile's last beat hand the total to the result register.
            finishing = Signal(name=f"finishing_row{r}")
            m.d.comb += finishing.eq(valid[-1] & last[-1])
            draining = Signal(name=f"draining_row{r}")
            m.d.comb += draining.eq(take & (out_row == r))
            # (the rows' next states, as the statements here and below make them)
            feed_valid = valid[-2] if stages > 1 else x_valid[r]
            feed_last = last[-2] if stages > 1 else x_regs[r].last
            finishing_next = Mux(advance, feed_valid & feed_last, finishing)
            result_next = Mux(advance & finishing, 1, Mux(draining, 0, result_valid[r]))
            stalls_next.append(finishing_next & result_next)
            with m.If(draining):
                m.d.sync += result_valid[r].eq(0)
            for c in range(cols):
                acc = Signal(signed(self._acc_width), name=f"acc_r{r}_c{c}")
                if self._assertions:
                    total = Signal(signed(self._acc_width + 1), name=f"total_r{r}_c{c}")
                    limit = 1 << (self._acc_width - 1)
                    m.d.comb += total.eq(acc + sums[c])
                    with m.If(advance & valid[-1]):
                        m.d.comb += Assert((total >= -limit) & (total < limit),
                                           f"accumulator row {r} column {c} overflows")
                with m.If(advance & valid[-1]):
                    with m.If(last[-1]):
                        m.d.sync += [acc.eq(0), result[r][c].eq(acc + sums[c])]
                    with m.Else():
                        m.d.sync += acc.eq(acc + sums[c])
            with m.If(advance & finishing):
                m.d.sync += result_valid[r].eq(1)

        # Emit results in row order; ``take`` frees the emitted row's register.
        with m.Switch(out_row):
            for r in range(rows):
                with m.Case(r):
                    m.d.comb += [self.o.valid.eq(result_valid[r]), self.o.payload.data.eq(result[r])]
        m.d.comb += [
            self.o.payload.row.eq(out_row),
            self.o.payload.last.eq(out_row == rows - 1),
            take.eq(self.o.valid & self.o.ready),
        ]
        m.d.sync += advance.eq(~Cat(*stalls_next).any())
        with m.If(take):
            m.d.sync += out_row.eq(Mux(out_row == rows - 1, 0, out_row + 1))
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
    """Y [n×t] from the array's output rows (``(row, data[cols])`` in emission order)."""
    n_pad, t_pad = -(-n // rows) * rows, -(-t // cols) * cols
    y = np.zeros((n_pad, t_pad), dtype=np.int64)
    tiles = [(r0, c0) for r0 in range(0, n_pad, rows) for c0 in range(0, t_pad, cols)]
    if len(outputs) != len(tiles) * rows:
        raise ValueError(f"expected {len(tiles) * rows} output rows, got {len(outputs)}")
    for i, (row, values) in enumerate(outputs):
        r0, c0 = tiles[i // rows]
        if row != i % rows:
            raise ValueError(f"output {i} is row {row}, expected row {i % rows}")
        y[r0 + row, c0:c0 + cols] = values
    return y[:n, :t]
