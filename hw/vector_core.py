"""The shared vector unit with its sequencer: a program of :class:`~hw.vector_isa.VectorOp` and
:class:`~hw.vector_isa.ScalarOp` instructions in a ROM, run in order on a
:class:`~hw.vector_unit.VectorUnit` and a :class:`~hw.scalar_unit.ScalarUnit`, exactly as
:class:`~hw.vector_isa.VectorMachine` runs it (issue 18).

:class:`Program` numbers a program's registers from 1 (``names`` first, then in order of first use;
register 0 is no register) and encodes each instruction as an :func:`instruction_layout` word; an
END word follows the last. A run
(``start`` while idle) goes from the first word to END, in order:

* a scalar operation goes to the scalar unit and is waited for;
* a pass reads its four register operands from the scalar unit's file, two a cycle (its shift
  amounts' registers, REGISTER's b and RSUB's minuend), resolves them as
  :func:`~hw.vector_lane.config_of` does and is issued; the instructions after it go on while it
  runs, until one needs it: a call, a STORE, a LOAD of an element it writes, or an instruction
  that reads or writes the register its reduction writes (the next pass reads its operands
  meanwhile, and is issued once the unit is free). Its result is written
  into that register in a cycle the scalar unit is idle; another LOAD reads the scratchpad in a
  cycle the pass is not reading its rows. A pass that ``follows`` a detached call reads each row
  of a once ``landed`` (the caller's count of the results it has landed) covers it;
* a :class:`~hw.vector_isa.Call` offers its index (into ``Program.calls``) on ``call`` and
  waits for ``resume``; meanwhile the caller has the scratchpad and the registers (below): the
  array writes its product of a matrix there, a testbench reads a trace.

An error — a pass or an operation the machine refuses (a ProgramError), or a register operand
outside its port — stops the run with ``error`` set and ``pc`` at the instruction (scalar
operations issued while a failing pass ran may have run). ``done`` is high while idle after a run
that reached END. While idle or called, ``access`` / ``access_data`` (and ``access_row``, the
element's whole row of ``lanes``) reach the scratchpad and
``register`` / ``register_data`` the register file (the caller's inputs, before a run, and its
results after). ``written`` shows every write into the scratchpad (the vector unit's).
:meth:`VectorCore.cycles` gives a program's cycles from ``start`` to ``done``.
With ``lend_bits``, ``lent_scale`` is the scalar unit's ScaleUnit lent (:class:`~hw.scalar_unit.ScalarUnit`):
a caller's block may run its scale programs on it while the core waits for a call.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model import numerics as nx

from .arith import check_integers
from .scalar_unit import ScalarUnit, amount_value, register_layout, scalar_layout, scalar_payload
from .scale_unit import scale_unit_signature
from .vector_isa import (A_BITS, B_BITS, ELEMENT_BITS, BSource, Call, Function, Part, Pre, Round, ScalarKind,
                         VectorOp)
from .vector_lane import AMOUNT_BITS, SHIFT_BITS, Saturate, fits, saturate_of
from .vector_unit import Reduction, VectorUnit, pass_layout, reduction_of, results_layout, written_layout


class Kind(enum.Enum, shape=2):
    END = 0
    SCALAR = 1
    VECTOR = 2
    CALL = 3


def amount_layout(registers: int) -> data.StructLayout:
    """A shift amount ``offset + sign · part(register)`` (``sign`` 0: the offset alone)."""
    return data.StructLayout({"register": range(registers), "sign": signed(3),
                              "offset": signed(SHIFT_BITS + 2), "part": Part})


def vector_layout(registers: int, depth: int) -> data.StructLayout:
    """A pass: its fixed fields, its vector operands (a in the scratchpad or, ``a_results``, the
    results memory) and the registers it reads and writes."""
    return data.StructLayout({
        "function": Function, "b_source": BSource, "pre": Pre, "round": Round, "negate": 1,
        "saturate": Saturate, "n": range(depth + 1), "a": range(depth), "a_results": 1, "b": range(depth),
        "c": range(depth), "dst": range(depth), "c_vector": 1, "write": 1, "reduce": Reduction,
        "b_period": range(depth + 1), "follows": 1,
        "a_shift": amount_layout(registers), "shift": amount_layout(registers),
        "b_register": range(registers), "pre_register": range(registers), "result": range(registers)})


def instruction_layout(registers: int, depth: int, calls: int = 1) -> data.StructLayout:
    return data.StructLayout({"kind": Kind, "op": data.UnionLayout({
        "scalar": scalar_layout(registers, depth), "vector": vector_layout(registers, depth),
        "call": range(max(calls, 1))})})


class Program:
    """A program assembled for a core of ``registers`` registers and a ``depth``-element
    scratchpad: ``number`` maps each register name to its register, ``words`` are the ROM's.

    With ``results``, the addresses from ``depth`` on are a memory of that many elements of their
    own, which the array's products land in and only a pass's a reads (the core's results memory)."""

    def __init__(self, program, *, registers: int, depth: int, results: int = 0, names=()):
        self.ops = list(program)
        self.calls = [op for op in self.ops if isinstance(op, Call)]      # a CALL word holds its index
        # register 0 is no register: an operand field a word does not use holds 0, so the core's
        # check of an instruction against the pass in flight never matches it
        self.number = {name: k + 1 for k, name in enumerate(dict.fromkeys(names))}
        for op in self.ops:
            reads = op.registers
            writes = (tuple(name for _, name in op.reduce) if isinstance(op, VectorOp) else
                      op.writes if isinstance(op, Call) else (op.result,))
            for name in (*reads, *writes):
                if name and name not in self.number:
                    self.number[name] = len(self.number) + 1
        if len(self.number) + 1 > registers:
            raise ValueError(f"the program names {len(self.number)} registers; a core of {registers} holds "
                             f"it with registers={len(self.number) + 1} or more (register 0 is none)")
        if not 0 <= results <= depth:
            raise ValueError(f"a results memory of {results} elements: at most the scratchpad's {depth}")
        self.registers, self.depth, self.results = registers, depth, results
        layout = self.layout = instruction_layout(registers, depth, len(self.calls))
        self.words = [layout.const(self.encode(op)).as_value().value for op in self.ops]
        self.words.append(layout.const({"kind": Kind.END}).as_value().value)

    def _amount(self, amount) -> dict:
        limit = 1 << (SHIFT_BITS + 1)
        if not -limit <= amount.offset < limit:
            raise ValueError(f"a pass's shift offset is {SHIFT_BITS + 2} bits, not {amount.offset}")
        return {"register": self.number.get(amount.register, 0), "offset": amount.offset,
                "sign": amount.sign if amount.register else 0, "part": amount.part}

    def encode(self, op) -> dict:
        if isinstance(op, Call):
            return {"kind": Kind.CALL, "op": {"call": next(k for k, c in enumerate(self.calls) if c is op)}}
        if not isinstance(op, VectorOp):
            return {"kind": Kind.SCALAR, "op": {"scalar": scalar_payload(op, self.number)}}
        a_results = self.depth <= op.a < self.depth + self.results
        a = op.a - self.depth if a_results else op.a
        for address in (op.b if op.b_source is BSource.VECTOR else 0, op.c or 0, op.dst or 0):
            if not 0 <= address < self.depth:
                raise ValueError(f"pass {op.note or op} reaches outside the scratchpad's "
                                 f"{self.depth} elements (only its a may read the results memory)")
        if not 0 <= op.n <= (self.results if a_results else self.depth) - a:
            where = f"results memory's {self.results}" if a_results else f"scratchpad's {self.depth}"
            raise ValueError(f"pass {op.note or op} reads a outside the {where} elements")
        number = self.number
        return {"kind": Kind.VECTOR, "op": {"vector": {
            "function": op.function, "b_source": op.b_source, "pre": op.pre, "round": op.round,
            "negate": int(op.negate), "saturate": saturate_of(op.saturate), "n": op.n, "a": a,
            "a_results": int(a_results),
            "b": op.b if op.b_source is BSource.VECTOR else 0, "c": op.c or 0, "dst": op.dst or 0,
            "c_vector": int(op.c is not None), "write": int(op.dst is not None), "reduce": reduction_of(op),
            "b_period": op.b_period or 0, "follows": int(op.follows),
            "a_shift": self._amount(op.a_shift), "shift": self._amount(op.shift),
            "b_register": number.get(op.b, 0) if op.b_source is BSource.REGISTER else 0,
            "pre_register": number.get(op.pre_register, 0),
            "result": number[op.reduce[0][1]] if op.reduce else 0}}}


class VectorCore(wiring.Component):
    """A :class:`Program` on ``lanes`` lanes (see the module docstring).

    Parameters
    ----------
    program : Program
        The instructions and the register numbering.
    lanes : int
        The vector unit's lanes (a power of two).
    exp2, sigmoid : bool or None
        The lanes' tables (EXP2's and SIGMOID's); None: a table where the program uses it.
    lend_bits : int or None
        Lend the scalar unit's ScaleUnit through ``lent_scale`` (FROM_INT operands this wide).
    memory, registers : dict
        The scratchpad's contents ({address: values}) and the registers' values ({name: integer
        or (mant, exp)}) after configuration; a caller may also write them through the ports.
    """

    START = 2          # a run's start taken and its first word read; each next word is read while
    #                    an instruction runs, so finishing one starts the next
    OPERANDS = 4       # a pass's four register reads, two a cycle (3), and its config formed (1):
    #                    a cycle less for each pair of them it does not use (operand_cycles)

    def __init__(self, program: Program, *, lanes: int, exp2: bool | None = None, sigmoid: bool | None = None,
                 lend_bits: int | None = None, memory=None, registers=None):
        check_integers((("lanes", lanes, 1, 64),))
        passes = [op for op in program.ops if isinstance(op, VectorOp)]
        if exp2 is None:
            exp2 = any(op.function is Function.EXP2 for op in passes)
        if sigmoid is None:
            sigmoid = any(op.b_source is BSource.SIGMOID for op in passes)
        self._program, self._lanes, self._exp2, self._sigmoid = program, lanes, exp2, sigmoid
        self._lend_bits = lend_bits
        self._memory_init = memory
        self._register_init = {program.number[name]: value for name, value in (registers or {}).items()}
        depth, registers = program.depth, program.registers
        lent = ({"lent_scale": Out(scale_unit_signature(nx.SCALE_EXP_BITS, lend_bits))} if lend_bits else {})
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "call": Out(stream.Signature(range(max(len(program.calls), 1)))), "resume": In(1),
            "pc": Out(range(len(program.words))),
            "access": In(data.StructLayout({"addr": range(depth), "data": signed(ELEMENT_BITS), "write": 1})),
            "access_data": Out(signed(ELEMENT_BITS)),
            "access_row": Out(data.ArrayLayout(signed(ELEMENT_BITS), lanes)),
            "written": Out(written_layout(depth, lanes)),
            "register": In(data.StructLayout({"addr": range(registers), "data": register_layout(),
                                              "write": 1})),
            "register_data": Out(register_layout()),
            **lent,
            **({"results": In(results_layout(program.results, lanes)),
                "landed": In(range(program.results + 1))} if program.results else {}),
        })

    program = property(lambda self: self._program)
    lanes = property(lambda self: self._lanes)

    def cycles(self) -> int:
        """Clock edges from ``start`` taken to ``done``, for a program that runs without error
        and calls answered at once: the core's timing, instruction by instruction (a pass goes
        on in the background until an instruction needs it)."""
        return self.timeline(self._program.ops, self._lanes)

    @classmethod
    def operand_cycles(cls, op) -> int:
        """A pass's cycles from its word to its config formed: a cycle a pair of register operands
        it reads (its shifts' registers; REGISTER's b and RSUB's minuend), two more."""
        pairs = ((op.a_shift.register, op.shift.register),
                 (op.b if op.b_source is BSource.REGISTER else None, op.pre_register))
        return cls.OPERANDS - sum(not any(pair) for pair in pairs)

    @classmethod
    def timeline(cls, ops, lanes: int, call_cycles=None) -> int:
        """:meth:`cycles` for the instructions ``ops`` on ``lanes`` lanes. Cycle ``c`` lies between
        edges ``c`` and ``c + 1`` (edge 1 takes ``start``); ``now`` is the cycle an instruction's
        first state begins. A pass in flight offers its result from cycle ``offer`` on, taken at the
        end of the first cycle from then in which the scalar unit is idle. ``call_cycles(call)``
        is the cycles from a call's transfer to its ``resume`` (1 if not given: answered at once),
        or for a detached call those, the cycles from its transfer until the caller takes the
        next call and, for a call a pass may follow, the cycles from its transfer to each result's
        landing (the cycle it is written), in order."""
        now, offer, busy_until = cls.START, None, 0     # busy_until: the scalar unit's last busy cycle
        caller_free = 0                                 # the cycle the caller takes a call again
        landing = []                                    # the cycle each of a detached call's results lands
        reduced, writes, reading = None, range(0), range(0)   # the pass in flight: its register,
        #                                                       elements written, cycles reading rows

        def taken():                # the edge that takes the pass's result (nothing runs meanwhile)
            return max(offer, busy_until + 1) + 1

        for op in ops:
            if isinstance(op, VectorOp):
                waits = offer is not None and reduced in op.registers
                start = max(now, taken()) if waits else now
                issue = max(start + cls.operand_cycles(op), taken() if offer is not None else 0) + 1
                rows = -(-(op.a % lanes + op.n) // lanes) if op.n else 0
                reading = list(range(issue, issue + rows))
                if op.follows and landing:      # a row once its last element has landed
                    for row in range(rows):
                        last = min((row + 1) * lanes - op.a % lanes, op.n) - 1
                        reading[row] = max(reading[row - 1] + 1 if row else issue,
                                           landing[last] + VectorUnit.FOLLOW_DELAY)
                    landing = []
                last_row = reading[-1] if rows else issue
                offer = last_row + VectorUnit.op_cycles(lanes, op) - max(rows, 1)
                now = issue
                reduced = op.reduce[0][1] if op.reduce else None
                writes = range(op.dst, op.dst + op.n) if op.dst is not None else range(0)
            elif isinstance(op, Call):
                if offer is not None:
                    now, offer = max(now, taken()), None
                cycles = call_cycles(op) if call_cycles else 1
                resume, busy, lands = (*cycles, ())[:3] if isinstance(cycles, tuple) else (cycles, None, ())
                now = max(now, caller_free)                         # taken once the caller is free
                caller_free = now + 1 + busy if busy is not None else 0
                landing = [now + cycle for cycle in lands]
                now += 1 + resume                                   # offered, then resumed
            else:
                names = [name for name in (op.a, op.b, op.exp.register, op.result) if name]
                pending = offer is not None and (
                    op.kind is ScalarKind.STORE or op.kind is ScalarKind.LOAD and op.address in writes
                    or reduced in names)
                if pending:
                    now, offer = max(now, taken()), None
                elif offer is not None and offer <= now:        # taken while this one is offered
                    offer = None
                cycles = ScalarUnit.cycles_of(op.kind)
                if op.kind is ScalarKind.LOAD and offer is not None:
                    execute = waited = now + 1 + ScalarUnit.OPERANDS   # its address: after its operands
                    while waited in reading:                        # a cycle the pass reads a row
                        waited += 1
                    cycles += waited - execute
                busy_until = now + cycles
                now = busy_until + 1
        if offer is not None:
            now = max(now, taken())
        return now + 1

    def elaborate(self, platform):
        m = Module()
        program = self._program
        registers, depth = program.registers, program.depth
        m.submodules.vector = vector = VectorUnit(lanes=self._lanes, depth=depth, exp2=self._exp2,
                                                  sigmoid=self._sigmoid, init=self._memory_init,
                                                  results=program.results)
        if program.results:         # the caller's results into the results memory, at any time
            m.d.comb += [vector.results.eq(self.results), vector.landed.eq(self.landed)]
        m.submodules.scalar = scalar = ScalarUnit(registers=registers, depth=depth, lend_bits=self._lend_bits,
                                                  init=self._register_init)
        if self._lend_bits:
            wiring.connect(m, wiring.flipped(self.lent_scale), scalar.lent_scale)
        layout = program.layout
        m.submodules.rom = rom = Memory(shape=layout.size, depth=len(program.words), init=program.words)
        fetch = rom.read_port()
        word = Signal(layout)
        pc = Signal(range(len(program.words)))
        failed_pc = Signal.like(pc)          # where a pass that failed was issued
        pass_failed = Signal()
        pass_ = word.op.vector

        idle = Signal()
        called = Signal()                  # waiting for the caller to resume: the caller's ports
        m.d.comb += [self.busy.eq(~idle), self.call.payload.eq(word.op.call)]
        # the scratchpad: the scalar unit's while running, the caller's while idle or called
        with m.If(idle | called):
            m.d.comb += vector.access.eq(self.access)
        with m.Else():
            m.d.comb += vector.access.eq(scalar.access)
        m.d.comb += [scalar.access_data.eq(vector.access_data), self.access_data.eq(vector.access_data),
                     self.access_row.eq(vector.access_row), self.written.eq(vector.written),
                     scalar.access_ready.eq(vector.access_free),
                     self.register_data.eq(scalar.read_data[0])]

        # a pass's register operands: read two a cycle through the scalar unit's two read ports
        def register_pairs(fields):
            """A pass word's register operands, in the pairs read together."""
            return [(fields.a_shift.register, fields.shift.register),
                    (fields.b_register, fields.pre_register)]

        def uses(fields, pair):
            """A pass reads registers in this pair of its operand fields (a pair it does not use
            is not read: a cycle less)."""
            first, second = register_pairs(fields)[pair]
            return (first != 0) | (second != 0)

        reads = register_pairs(pass_)
        operand = Signal(range(len(reads) + 1))
        values = [Signal(register_layout(), name=f"operand{k}") for k in range(2 * len(reads))]
        reading = Signal()
        with m.Switch(operand):
            for k, pair in enumerate(reads):
                with m.Case(k):
                    m.d.comb += [scalar.read[0].eq(pair[0]), scalar.read[1].eq(pair[1])]
        m.d.comb += scalar.read_select.eq(reading | idle | called)
        with m.If(idle | called):
            m.d.comb += [scalar.read[0].eq(self.register.addr), scalar.write.addr.eq(self.register.addr),
                         scalar.write.data.eq(self.register.data), scalar.write.en.eq(self.register.write)]
        for k in range(len(reads)):
            with m.If(reading & (operand == k + 1)):
                m.d.sync += [values[2 * k].eq(scalar.read_data[0]), values[2 * k + 1].eq(scalar.read_data[1])]

        def resolved(amount, register):
            """``offset + sign · part(register)``, the register's part saturated to SHIFT_BITS + 4
            bits first (beyond them, as beyond an offset's SHIFT_BITS + 2, the amount is past every
            shift's limit either way): AMOUNT_BITS, which the unit's PassDecoder clamps."""
            total = Signal(signed(AMOUNT_BITS))
            m.d.comb += total.eq(amount_value(amount.offset, amount.sign, register, amount.part,
                                              bits=SHIFT_BITS + 4))
            return total

        issue = Signal(pass_layout(depth))
        operand_error = Signal()
        config = issue.config
        code = pass_.function == Function.CODE
        b_value, pre_value = values[2].value, values[3].value
        # CODE's b·127 fits the a port where b lies between these (compared, not multiplied first)
        code_low, code_high = -((1 << (A_BITS - 1)) // nx.ACT_MAX), ((1 << (A_BITS - 1)) - 1) // nx.ACT_MAX
        form = Signal()
        with m.If(form):
            m.d.sync += [
                config.function.eq(pass_.function), config.b_source.eq(pass_.b_source),
                config.pre.eq(pass_.pre), config.round.eq(pass_.round), config.negate.eq(pass_.negate),
                config.saturate.eq(pass_.saturate), config.a_shift.eq(resolved(pass_.a_shift, values[0])),
                config.shift.eq(resolved(pass_.shift, values[1])),
                config.b.eq(Mux(code, 0, b_value)), config.code.eq(Mux(code, b_value * nx.ACT_MAX, 0)),
                config.pre_register.eq(pre_value),
                issue.n.eq(pass_.n), issue.a.eq(pass_.a), issue.a_results.eq(pass_.a_results),
                issue.b.eq(pass_.b), issue.c.eq(pass_.c),
                issue.dst.eq(pass_.dst), issue.c_vector.eq(pass_.c_vector), issue.write.eq(pass_.write),
                issue.reduce.eq(pass_.reduce), issue.b_period.eq(pass_.b_period),
                issue.follows.eq(pass_.follows),
                # REGISTER's b must fit the b port, CODE's b·127 the a port, RSUB's minuend an element
                operand_error.eq((((pass_.b_source == BSource.REGISTER) & ~code & ~fits(b_value, B_BITS))
                                  | (code & ((b_value < code_low) | (b_value > code_high)))
                                  | ((pass_.pre == Pre.RSUB) & ~fits(pre_value, ELEMENT_BITS)))
                                 & (pass_.n != 0))]
        m.d.comb += [vector.i.payload.eq(issue), scalar.i.payload.eq(word.op.scalar)]

        ran = Signal()

        # a pass in flight: issued, its result not yet taken; the next instructions go on unless
        # they name its reduction's register, are a call or a STORE, or LOAD an element it writes
        # (a next pass reads its operands meanwhile, and is issued once the unit is free)
        pending = Signal()
        pending_result = Signal(range(registers))       # its reduction's register, 0 if none
        pending_pc = Signal.like(pc)
        stopping = Signal()                             # it failed: stop at the next boundary
        take = Signal()
        m.d.comb += take.eq(pending & vector.o.valid & ~scalar.busy)
        with m.If(take):      # its result into the register file while the scalar unit is idle
            m.d.comb += [vector.o.ready.eq(1), scalar.write.addr.eq(pending_result),
                         scalar.write.data.value.eq(vector.o.payload.value),
                         scalar.write.en.eq(~vector.o.payload.error & (pending_result != 0))]
            m.d.sync += pending.eq(0)
            with m.If(vector.o.payload.error):
                m.d.sync += [stopping.eq(1), self.error.eq(1), failed_pc.eq(pending_pc), pass_failed.eq(1)]

        def names_pending(fields):
            """One of these register fields is the pass in flight's reduction register."""
            named = 0
            for field in fields:
                named |= field == pending_result
            return named & (pending_result != 0)

        op = word.op.scalar
        pending_dst = Signal(range(depth))
        pending_end = Signal(range(2 * depth + 1))      # the elements it writes: dst to end (dst if none)
        written = Signal()                              # a LOAD's element is among them
        m.d.comb += written.eq((op.address >= pending_dst) & (op.address < pending_end))
        hazard = pending & (names_pending((op.a, op.b, op.exp_register, op.result))
                            | (op.kind == ScalarKind.LOAD) & written | (op.kind == ScalarKind.STORE))
        reads_pending = Signal()        # a pass reads the register the pass in flight writes
        m.d.comb += reads_pending.eq(names_pending([field for pair in reads for field in pair]))

        def dispatch():
            """Start the word the ROM holds (the next one), or stop at END."""
            upcoming = layout(fetch.data).op.vector
            m.d.sync += [word.eq(fetch.data), operand.eq(~uses(upcoming, 0))]
            with m.Switch(layout(fetch.data).kind):
                with m.Case(Kind.SCALAR):
                    m.next = "SCALAR"
                with m.Case(Kind.VECTOR):
                    m.next = "OPERANDS"
                with m.Case(Kind.CALL):
                    m.next = "CALL"
                with m.Default():
                    m.next = "DRAIN"

        def offer(port, blocked, then):
            """Offer the instruction on stream ``port`` once nothing ``blocked`` holds it back (or stop
            after a pass that failed); ``then`` once it is taken."""
            with m.If(stopping):
                m.next = "DRAIN"
            with m.Elif(~blocked):
                m.d.comb += port.valid.eq(1)
                with m.If(port.ready):
                    m.next = then

        def finish(error):
            """The instruction is done: stop with ``error`` set where it failed (or where a pass
            in flight failed), else start the next."""
            with m.If(error | stopping):
                m.d.sync += self.error.eq(1)
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += pc.eq(pc + 1)
                dispatch()

        # the next word is read while an instruction runs (the address pc + 1, stable from its
        # first cycle), so finishing one dispatches the next at once; idle, the first word waits
        m.d.comb += [fetch.addr.eq(Mux(idle, 0, pc + 1)), self.pc.eq(Mux(pass_failed, failed_pc, pc))]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [idle.eq(1), self.done.eq(ran & ~self.error)]
                with m.If(self.start):
                    m.d.sync += [pc.eq(0), self.error.eq(0), ran.eq(1), stopping.eq(0), pass_failed.eq(0)]
                    m.next = "START"
            with m.State("START"):          # the first word read (the ROM's address was 0)
                dispatch()
            with m.State("SCALAR"):
                offer(scalar.i, hazard, "SCALAR_WAIT")
            with m.State("SCALAR_WAIT"):
                m.d.comb += scalar.o.ready.eq(1)
                with m.If(scalar.o.valid):
                    finish(scalar.o.payload.error)
            with m.State("CALL"):
                offer(self.call, pending, "CALLED")
            with m.State("CALLED"):
                m.d.comb += called.eq(1)
                with m.If(self.resume):
                    finish(0)
            with m.State("OPERANDS"):     # once no register it reads waits for the pass in flight
                with m.If(stopping):
                    m.next = "DRAIN"
                with m.Elif(~pending | ~reads_pending):
                    m.d.comb += reading.eq(1)
                    m.d.sync += operand.eq(operand + 1)
                    with m.If(operand == Mux(uses(pass_, 1), 2, 1)):
                        m.next = "FORM"
            with m.State("FORM"):
                m.d.comb += form.eq(1)
                m.next = "PASS"
            with m.State("PASS"):         # issued once the unit has given the last pass's result
                with m.If(operand_error):
                    finish(1)
                with m.Elif(stopping):
                    m.next = "DRAIN"
                with m.Else():
                    m.d.comb += vector.i.valid.eq(1)
                    with m.If(vector.i.ready):
                        m.d.sync += [pending.eq(1), pending_pc.eq(pc),
                                     pending_result.eq(Mux(pass_.reduce == Reduction.NONE, 0, pass_.result)),
                                     pending_dst.eq(pass_.dst),
                                     pending_end.eq(pass_.dst + Mux(pass_.write, pass_.n, 0))]
                        finish(0)
            with m.State("DRAIN"):        # the pass in flight, if any, finishes
                with m.If(~pending):
                    m.next = "IDLE"
        return m
