"""The shared vector unit: ``lanes`` :class:`~hw.vector_lane.VectorLane`\\ s over one banked
scratchpad, running :class:`~hw.vector_isa.VectorOp` passes exactly as
:class:`~hw.vector_isa.VectorMachine` does.

The scratchpad holds ``depth`` signed elements of ``ELEMENT_BITS`` in ``lanes`` banks: element
``e`` is row ``e // lanes`` of bank ``e % lanes``. A pass's vector operands (a, and b, c and its
destination where it has them) must be congruent modulo ``lanes`` (a region laid out on a
multiple of ``lanes`` and offsets the same in each); then every element of a pass stays in one
lane, and a group of ``lanes`` elements — one row of each bank — goes in each cycle, the lanes
outside the pass masked at its first and last row. A repeated b (``b_period``) starts on a row's
first lane, as a does, and repeats whole rows. Each bank has three read ports (a, b, c: three
copies of a block RAM where a family's block RAM has one read port) and one write port.

A pass (``i``: its resolved operation :data:`~hw.vector_lane.CONFIG`, length, addresses and
reduction) is taken when the unit is idle; its rows issue one a cycle from the next cycle on (its
:class:`~hw.vector_lane.PassDecoder` forms the lanes' constants meanwhile: a row reaches the first
stage that uses them as they arrive), each result is written back as it leaves its lane, and each
row's results are reduced by a registered tree (one comparator or adder a level) into the pass's
running result. Then ``o`` offers the reduction's value (ARGMAX: the index) and ``error``, set where
:class:`~hw.vector_isa.VectorMachine` raises (a value outside its port, a b element outside the
b port, operands not congruent, MAX, SUM or ARGMAX of an empty pass); a pass with no reduction
offers once its last result is written. :meth:`cycles` gives a pass's cycles from its transfer on
``i`` to its result's offer on ``o``.

``access`` reads and writes one element while the unit is idle (``busy`` low): the sequencer's
loads and stores; ``access_data`` is the element at the address of the cycle before, and
``access_row`` the whole row that holds it (``lanes`` elements). A read also works while a pass
runs, in any cycle ``access_free`` is high (the pass is not reading its rows).

A pass that ``follows`` a call reads a from the results memory as the call lands it: its row
issues once ``landed`` (the elements landed from a's first on) covers the row's elements; ``landed``
is registered as it enters, so a row issues :attr:`VectorUnit.FOLLOW_DELAY` cycles after the
cycle its last element lands in.

``written`` shows every write into the scratchpad as the banks take it (a pass's results and
``access``'s): the row, the banks written (``mask``) and what each is written, so a unit beside the
core may keep a copy of a region.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import check_integers
from .vector_isa import B_BITS, ELEMENT_BITS, SUM_BITS, BSource, Function, VectorMachine
from .vector_lane import CONFIG, PassDecoder, VectorLane, fits


class Reduction(enum.Enum, shape=3):
    NONE = 0
    MAXABS = 1
    MAX = 2
    SUM = 3
    ARGMAX = 4


def reduction_of(op) -> Reduction:
    """The unit's Reduction for a :class:`~hw.vector_isa.VectorOp`'s ``reduce``."""
    return Reduction[op.reduce[0][0].name] if op.reduce else Reduction.NONE


def results_layout(results: int, lanes: int) -> data.StructLayout:
    """The results memory's write port: ``row[k]`` into the lanes ``k`` of ``mask`` in ``addr``'s
    row (an element: its lane's bit, its value in every ``row[k]``)."""
    return data.StructLayout({"addr": range(max(results, 1)), "mask": lanes,
                              "row": data.ArrayLayout(signed(ELEMENT_BITS), lanes)})


def written_layout(depth: int, lanes: int) -> data.StructLayout:
    """A write into the scratchpad: ``row[k]`` into bank ``k`` of ``row``'s row, for each bank of
    ``mask``."""
    return data.StructLayout({"row": range(max(depth // lanes, 1)), "mask": lanes,
                              "data": data.ArrayLayout(signed(ELEMENT_BITS), lanes)})


def pass_layout(depth: int) -> data.StructLayout:
    return data.StructLayout({
        "config": CONFIG, "n": range(depth + 1), "a": range(depth), "a_results": 1, "b": range(depth),
        "c": range(depth), "dst": range(depth), "c_vector": 1, "write": 1, "reduce": Reduction,
        "b_period": range(depth + 1),       # b's elements repeat every b_period (0: none)
        "follows": 1})                      # a row issues once ``landed`` covers it


class VectorUnit(wiring.Component):
    """``lanes`` lanes (a power of two) over a ``depth``-element scratchpad; one pass at a time.

    Parameters
    ----------
    lanes : int
        Elements a cycle (1 to 64, a power of two).
    depth : int
        Scratchpad elements (a multiple of ``lanes``).
    exp2, sigmoid : bool
        The lanes' tables (:class:`~hw.vector_lane.VectorLane`).
    init : dict
        The scratchpad's contents after configuration: {address: values}, the rest 0.
    results : int
        Elements of the results memory (0: none; a multiple of ``lanes``, at most ``depth``): banked
        as the scratchpad is, written by ``results`` (units beside the core; a row part a cycle),
        read by a pass's a where ``a_results`` is set.
    """

    def __init__(self, *, lanes: int, depth: int, exp2: bool = True, sigmoid: bool = False, init=None,
                 results: int = 0):
        check_integers((("lanes", lanes, 1, 64), ("depth", depth, lanes, 1 << 20),
                        ("results", results, 0, depth)))
        if results % lanes:
            raise ValueError(f"results must be a multiple of lanes {lanes}, not {results}; "
                             f"{results + lanes - results % lanes} would")
        self._results = results
        if lanes & (lanes - 1):
            raise ValueError(f"lanes must be a power of two, not {lanes}; "
                             f"{1 << (lanes.bit_length() - 1)} or {1 << lanes.bit_length()} would")
        if depth % lanes:
            raise ValueError(f"depth must be a multiple of lanes {lanes}, not {depth}; "
                             f"{depth + lanes - depth % lanes} would")
        self._lanes, self._depth, self._exp2, self._sigmoid = lanes, depth, exp2, sigmoid
        contents = VectorMachine(depth)         # its checks: inside the scratchpad, an element's width
        for address, values in (init or {}).items():
            contents.write(address, values)
        self._init = contents.memory
        super().__init__({
            "i": In(stream.Signature(pass_layout(depth))),
            "o": Out(stream.Signature(data.StructLayout({
                "value": signed(SUM_BITS), "error": 1}))),
            "access": In(data.StructLayout({"addr": range(depth), "data": signed(ELEMENT_BITS),
                                            "write": 1})),
            "access_data": Out(signed(ELEMENT_BITS)),
            "access_row": Out(data.ArrayLayout(signed(ELEMENT_BITS), lanes)),
            "access_free": Out(1),
            "busy": Out(1),
            "written": Out(written_layout(depth, lanes)),
            **({"results": In(results_layout(results, lanes)), "landed": In(range(results + 1))}
               if results else {}),
        })

    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)
    FOLLOW_DELAY = 2        # a following pass's row issues this many cycles after its last element lands

    def cycles(self, n: int, offset: int = 0, reduces: bool = True) -> int:
        """Clock edges from a pass of ``n`` elements (``offset`` = a mod lanes) taken to its result
        offered: its rows (one cycle at least), the lanes' latency and the write, then for a pass
        that ``reduces`` the reduction's leaves, tree and running result."""
        return self.cycles_of(self._lanes, n, offset, reduces)

    @staticmethod
    def cycles_of(lanes: int, n: int, offset: int = 0, reduces: bool = True) -> int:
        """:meth:`cycles` without a unit."""
        rows = -(-(offset + n) // lanes) if n else 0
        return max(rows, 1) + VectorLane.LATENCY + 2 + ((lanes - 1).bit_length() + 1 if reduces else 0)

    @staticmethod
    def op_cycles(lanes: int, op) -> int:
        """:meth:`cycles_of` for a :class:`~hw.vector_isa.VectorOp`."""
        return VectorUnit.cycles_of(lanes, op.n, op.a % lanes, bool(op.reduce))

    def elaborate(self, platform):
        m = Module()
        lanes, depth = self._lanes, self._depth
        rows, shift = depth // lanes, (lanes - 1).bit_length()

        banks = []
        for k in range(lanes):
            m.submodules[f"bank{k}"] = bank = Memory(shape=signed(ELEMENT_BITS), depth=rows,
                                                     init=self._init[k::lanes])
            banks.append((bank.read_port(), bank.read_port(), bank.read_port(), bank.write_port()))
        results = []                        # the results memory's banks: (a's read port, write port)
        for k in range(lanes if self._results else 0):
            m.submodules[f"results{k}"] = bank = Memory(shape=signed(ELEMENT_BITS),
                                                        depth=self._results // lanes, init=[])
            read, write = bank.read_port(), bank.write_port()
            port = self.results
            m.d.comb += [write.addr.eq(port.addr >> shift), write.data.eq(port.row[k]),
                         write.en.eq(port.mask[k])]
            results.append(read)
        m.submodules.decoder = decoder = PassDecoder()
        units = []
        for k in range(lanes):
            m.submodules[f"lane{k}"] = lane = VectorLane(exp2=self._exp2, sigmoid=self._sigmoid)
            m.d.comb += lane.config.eq(decoder.lane)
            units.append(lane)

        op = Signal(pass_layout(depth))
        m.d.comb += decoder.config.eq(op.config)
        offset = op.a[:shift] if shift else 0
        b_vector = (op.config.b_source == BSource.VECTOR)
        row = Signal(range(rows + 1))                       # the row being issued, from a's first
        b_row = Signal(range(rows + 1))                     # b's row: row, modulo b_period's rows
        period_rows = op.b_period >> shift
        row_count = Signal(range(rows + 2))                # the pass's rows (registered as it is taken)
        landing_end = Signal(range(depth + 2 * lanes + 1))   # a's elements up to the end of ``row``
        if self._results:           # the caller's count, registered (it comes from the caller's state)
            landed = Signal.like(self.landed)
            m.d.sync += landed.eq(self.landed)
        error = Signal()
        collecting = Signal()          # ISSUE and DRAIN: the only states that flag errors and
        #                                reduce, so the result offered in RESULT holds (the stream rule)

        # -- issue: one row of every bank a cycle, the lanes outside the pass masked -------------
        issue = Signal()
        issued = Signal()                                  # the read data of the cycle before
        issued_mask = Signal(lanes)
        a_row = (op.a >> shift) + row                      # a's row, in the scratchpad or the results
        for k, (ra, rb, rc, _) in enumerate(banks):
            if results:
                m.d.comb += results[k].addr.eq(a_row)
            m.d.comb += [ra.addr.eq(Mux(issue, a_row, self.access.addr >> shift)),
                         rb.addr.eq((op.b >> shift) + b_row), rc.addr.eq((op.c >> shift) + row)]
        mask = Signal(lanes)
        for k in range(lanes):
            index = (row << shift) + k                     # the element's index + offset
            m.d.comb += mask[k].eq((index >= offset) & (index < op.n + offset))
        m.d.sync += [issued.eq(issue), issued_mask.eq(mask)]
        m.d.comb += self.access_free.eq(~issue)
        b_misfit = Signal()
        for k, ((ra, rb, rc, _), lane) in enumerate(zip(banks, units)):
            b = rb.data
            a = Mux(op.a_results, results[k].data, ra.data) if results else ra.data
            m.d.comb += [lane.i.valid.eq(issued & issued_mask[k]), lane.i.a.eq(a),
                         lane.i.b.eq(b[:B_BITS]), lane.i.c.eq(Mux(op.c_vector, rc.data, 0))]
            with m.If(issued & issued_mask[k] & b_vector & (op.config.function != Function.CODE)
                      & ~fits(b, B_BITS)):
                m.d.comb += b_misfit.eq(1)
        with m.If(collecting & b_misfit):
            m.d.sync += error.eq(1)

        # -- write-back, and the reduction: each row's results reduced by a registered tree (the
        # left operand holds the lower indices, so ties keep it), then into the pass's running result
        written = Signal(range(rows + 1))                  # rows written back so far
        out_valid = units[0].o.valid
        for lane in units[1:]:
            out_valid |= lane.o.valid
        reduce = op.reduce
        def node_layout(bits):          # a tree level's sums need a bit more than the level below
            return data.StructLayout({"valid": 1, "value": signed(bits), "lane": range(lanes)})

        # a leaf: y, or for MAXABS the key 2·|y| − (1 where y < 0) (y's bits, inverted where y is
        # negative, above its sign bit), which orders as |y| does with no negation; the largest
        # key k gives back |y| = (k + 1) >> 1
        bits = key_bits = ELEMENT_BITS + 1
        leaves = []
        for k, ((_, _, _, w), lane) in enumerate(zip(banks, units)):
            y = lane.o.y
            m.d.comb += [w.addr.eq(Mux(out_valid, (op.dst >> shift) + written, self.access.addr >> shift)),
                         w.data.eq(Mux(out_valid, y, self.access.data)),
                         w.en.eq(Mux(out_valid, lane.o.valid & op.write,
                                     ~self.busy & self.access.write & (self.access.addr[:shift] == k
                                                                       if shift else 1)))]
            m.d.comb += [self.written.mask[k].eq(w.en), self.written.data[k].eq(w.data)]
            if k == 0:          # every bank writes the same row
                m.d.comb += self.written.row.eq(w.addr)
            leaf = Signal(node_layout(bits), name=f"leaf{k}")
            m.d.sync += [leaf.valid.eq(lane.o.valid & (reduce != Reduction.NONE)),
                         leaf.value.eq(Mux(reduce == Reduction.MAXABS, Cat(y[-1], y ^ -y[-1]), y)),
                         leaf.lane.eq(k)]
            leaves.append(leaf)
            with m.If(collecting & lane.o.valid & lane.o.error):
                m.d.sync += error.eq(1)
        with m.If(out_valid):
            m.d.sync += written.eq(written + 1)
        row_of = Signal.like(written)                      # the row the leaves hold, then each level
        m.d.sync += row_of.eq(written)

        def reduced(left, right, name, bits):
            """The left node (lower indices) and the right one reduced (into ``bits``): their sum,
            or the larger (the left on a tie); and whether the right one was taken. One carry
            chain: ``left + right`` for SUM, else ``left − right``, whose sign compares them."""
            node = Signal(node_layout(bits), name=name)
            take_right = Signal(name=f"{name}_right")
            compare = reduce != Reduction.SUM
            total = Signal(signed(max(len(left.value), len(right.value)) + 1), name=f"{name}_total")
            m.d.comb += [total.eq(Mux(left.valid | compare, left.value, 0)
                                  + (Mux(right.valid | compare, right.value, 0) ^ -compare) + compare),
                         take_right.eq(right.valid & (~left.valid | total[-1]))]
            m.d.comb += [getattr(node, field).eq(Mux(take_right, getattr(right, field), getattr(left, field)))
                         for field in ("valid", "value", "lane")]
            with m.If(~compare):
                m.d.comb += [node.valid.eq(left.valid | right.valid), node.value.eq(total)]
            return node, take_right

        level, depth_of_tree = leaves, 0
        while len(level) > 1:
            depth_of_tree += 1
            bits += 1
            registered = []
            for index in range(0, len(level) - 1, 2):
                name = f"tree{depth_of_tree}_{index // 2}"
                node = Signal(node_layout(bits), name=name)
                m.d.sync += node.eq(reduced(level[index], level[index + 1], f"{name}_next", bits)[0])
                registered.append(node)
            if len(level) % 2:
                carry = Signal(node_layout(bits), name=f"tree{depth_of_tree}_carry")
                m.d.sync += [getattr(carry, field).eq(getattr(level[-1], field))
                             for field in ("valid", "value", "lane")]
                registered.append(carry)
            level = registered
            row_next = Signal.like(row_of, name=f"row{depth_of_tree}")
            m.d.sync += row_next.eq(row_of)
            row_of = row_next
        best = Signal(node_layout(SUM_BITS))
        best_row = Signal.like(written)
        clear = Signal()
        merged, newer = reduced(best, level[0], "merged", SUM_BITS)
        with m.If(clear):
            m.d.sync += best.valid.eq(0)
        with m.Elif(collecting & level[0].valid):
            m.d.sync += best.eq(merged)
            with m.If(newer):
                m.d.sync += best_row.eq(row_of)
        index = Signal(range(depth + lanes))
        m.d.comb += index.eq((best_row << shift) + best.lane - offset)
        access_lane = Signal(range(lanes))
        m.d.sync += access_lane.eq(self.access.addr[:shift] if shift else 0)
        words = Cat(*(ports[0].data for ports in banks))
        m.d.comb += [self.access_data.eq(words.word_select(access_lane, ELEMENT_BITS).as_signed()),
                     self.access_row.eq(words)]

        # -- the pass -----------------------------------------------------------------------------
        drain = Signal(range(VectorLane.LATENCY + depth_of_tree + 4))
        # the last row's results are written LATENCY + 1 cycles after it issues, then reduced by
        # the leaves, the tree and the running result (a pass with no reduction has only its errors)
        last_write = VectorLane.LATENCY
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.i.ready.eq(1), clear.eq(1)]
                with m.If(self.i.valid):
                    payload = self.i.payload
                    same = [(payload.b, payload.config.b_source == BSource.VECTOR),
                            (payload.c, payload.c_vector), (payload.dst, payload.write)]
                    congruent = 1
                    for address, used in same if shift else ():
                        congruent &= (address[:shift] == payload.a[:shift]) | ~used
                    if shift:           # a repeated b: whole rows, from a row's first lane
                        congruent &= (payload.b_period == 0) | ((payload.b_period[:shift] == 0)
                                                                 & (payload.a[:shift] == 0))
                    first = payload.a[:shift] if shift else 0
                    m.d.sync += [op.eq(payload), row.eq(0), b_row.eq(0), written.eq(0), error.eq(~congruent),
                                 drain.eq(0), row_count.eq((payload.n + first + lanes - 1) >> shift),
                                 landing_end.eq(lanes - first)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                # a row issues a cycle; a pass that follows a call, once the call has landed it
                go = Signal()
                if self._results:           # the row's elements landed: all up to its end, or all n
                    m.d.comb += go.eq(~op.follows | (landed >= landing_end) | (landed >= op.n)
                                      | (row >= row_count))
                else:
                    m.d.comb += go.eq(1)
                m.d.comb += [self.busy.eq(1), collecting.eq(1), issue.eq((row < row_count) & go)]
                with m.If(go):
                    m.d.sync += [row.eq(row + 1), landing_end.eq(landing_end + lanes),
                                 b_row.eq(Mux((period_rows != 0) & (b_row + 1 == period_rows), 0, b_row + 1))]
                    with m.If(row + 1 >= row_count):
                        m.next = "DRAIN"
            with m.State("DRAIN"):       # the lanes, the leaves, the tree and the running result
                m.d.comb += [self.busy.eq(1), collecting.eq(1)]
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == Mux(reduce == Reduction.NONE, last_write, last_write + depth_of_tree + 1)):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1),
                             self.o.payload.value.eq(Mux(reduce == Reduction.ARGMAX, index,
                                                         Mux(~best.valid, 0,
                                                             Mux(reduce == Reduction.MAXABS,
                                                                 (best.value[:key_bits] + 1) >> 1,
                                                                 best.value)))),
                             self.o.payload.error.eq(error | ~best.valid & (reduce != Reduction.NONE)
                                                     & (reduce != Reduction.MAXABS))]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m
