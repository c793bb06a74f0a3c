"""Token generation on the vector engine (issue 18, in progress): :class:`~hw.engine.Engine`'s
command interface — ``command`` in, tokens out on ``o``, ``status`` — on a
:class:`~hw.vector_engine.VectorEngine` running the one token program of
``hw.vector_programs.ProgramModel(units=True)``, with a :class:`~hw.sampler.Sampler`.

- ``TOKEN`` (``token``): the program runs once with ``token`` at the current position (its keys
  and values join the KV cache; the logits and their scale are left for a GENERATE); the position
  advances.
- ``GENERATE`` (``count``, ``greedy``, ``coef``, ``top_k``, ``seed``): the sampler is seeded, then
  ``count`` times: the last run's logits go to the sampler, read from the scratchpad one a cycle,
  with the coefficient ``logit_scale · coef`` (a :class:`~hw.scale_unit.NormalizedScaleMultiplier`;
  ``logit_scale`` is the program's register); the token leaves on ``o`` (``last`` on the final
  one) and, unless it was the last, runs as a TOKEN does.
- ``RESET``: the position goes back to 0.

``stop`` (a pulse) during a generation makes the next token out the last one, as does a full
context (``full``: the position reached the model's context). ``error`` is sticky: the engine
stopped on an error, the sampler flagged ``invalid``, or a coefficient was not normalized. Tokens
and traces equal ``model.integer.IntegerModel.generate`` (``tests/hw/test_vector_generator.py``).
The scratchpad's gains and the registers' constants are the memories' initial contents, so the
generator needs no loading. Weights from flash, taps and phase counters are the old engine's only.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .engine import (COUNT_BITS, CYCLE_BITS, Command, command_layout, status_signature, stop_request,
                     token_layout)
from .sampler import Sampler
from .scale_unit import NormalizedScaleMultiplier, scale_layout
from .skid_buffer import SkidBuffer
from .token_table import logit_width
from .vector_core import Program
from .vector_engine import VectorEngine
from .vector_isa import Call
from .vector_programs import ProgramModel

REGISTERS = 256         # the register file: a program names fewer (ulx3s: 161)
# the generator's parameters (``Soc(engine={"vector": True, ...})`` takes these)
PARAMETERS = ("rows", "simd", "lanes", "attention_lanes", "head_lanes", "k_max")


class VectorGenerator(wiring.Component):
    """The Engine's commands on a VectorEngine (see the module docstring).

    Parameters
    ----------
    model : model.integer.IntegerModel
        The model.
    rows, simd, lanes, attention_lanes, head_lanes : int
        The VectorEngine's sizes.
    k_max : int
        The largest ``top_k`` the sampler keeps.
    """

    def __init__(self, model, *, rows: int, simd: int, lanes: int, attention_lanes: int = 1,
                 head_lanes: int = 1, k_max: int = 8):
        cfg = self._config = model.config
        programs = ProgramModel(model, units=True)
        # no trace points: nothing looks at them here, and each waits for the pass before it
        ops = [op for op in programs.token_program(0, 0) if not (isinstance(op, Call) and op.kind == "trace")]
        program = Program(ops, registers=REGISTERS, names=programs.registers, **programs.memories(lanes))
        self._engine = VectorEngine(model, program, rows=rows, simd=simd, lanes=lanes,
                                    attention_lanes=attention_lanes, head_lanes=head_lanes,
                                    memory=programs.memory, registers=programs.registers)
        self._logits, self._logit_scale = programs.layout["logits"], program.number["logit_scale"]
        self._sampler = Sampler(logit_width=logit_width(cfg.hidden_size), vocab_max=cfg.vocab_size,
                                k_max=k_max)
        self._k_max = k_max
        super().__init__({
            "command": In(stream.Signature(command_layout(cfg, k_max))),
            "o": Out(stream.Signature(token_layout(cfg))),
            "status": Out(status_signature(cfg)),
        })

    engine = property(lambda self: self._engine)
    k_max = property(lambda self: self._k_max)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.sampler = sampler = self._sampler
        # the logits reach the sampler through a registered stage: read from the scratchpad's block
        # RAM, they would otherwise go straight into the sampler's comparison
        m.submodules.logits_in = logits_in = SkidBuffer(sampler.i.payload.shape())
        wiring.connect(m, logits_in.o, sampler.i)
        m.submodules.coef_product = coef_mul = NormalizedScaleMultiplier()
        cfg, status = self._config, self.status
        vocab, context = cfg.vocab_size, cfg.max_position_embeddings

        position = Signal(range(context + 1))
        token = Signal(range(vocab))            # the token a run takes
        remaining = Signal(COUNT_BITS)          # tokens still to generate
        tokens = Signal(COUNT_BITS)
        cycles = Signal(CYCLE_BITS)
        stopping = Signal()
        error = Signal()
        request = Signal(command_layout(cfg, self._k_max))    # the GENERATE being served
        coef = Signal(scale_layout(len(request.coef.exp)))    # the sampler's coefficient
        logit_scale = Signal(coef_mul.i.a.shape())    # the logits' scale, as read
        full = position == context
        idle = Signal()
        m.d.comb += [status.busy.eq(~idle), status.full.eq(full), status.error.eq(error),
                     status.position.eq(position), status.tokens.eq(tokens), status.cycles.eq(cycles),
                     engine.token.eq(token), engine.position.eq(position),
                     sampler.greedy.eq(request.greedy), sampler.coef.eq(coef),
                     sampler.top_k.eq(request.top_k), sampler.seed.eq(self.command.payload.seed)]
        with m.If(~idle):
            m.d.sync += cycles.eq(cycles + 1)
        with m.If(stop_request(m, status.stop, self.o)):
            m.d.sync += stopping.eq(1)

        index = Signal(range(vocab + 1))        # logits read
        fed = Signal(range(vocab + 1))          # logits offered to the sampler and taken
        reading = Signal()                      # a logit read the cycle before: it is on access_data
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [idle.eq(1), self.command.ready.eq(1)]
                with m.If(self.command.valid):
                    payload = self.command.payload
                    with m.Switch(payload.op):
                        with m.Case(Command.TOKEN):
                            m.d.sync += token.eq(payload.token)
                            with m.If(~full):
                                m.next = "RUN"
                        with m.Case(Command.GENERATE):
                            m.d.sync += [request.eq(payload), remaining.eq(payload.count), tokens.eq(0),
                                         stopping.eq(0)]
                            m.d.comb += sampler.seed_load.eq(1)
                            with m.If(payload.count != 0):
                                m.next = "SCALE"
                        with m.Case(Command.RESET):
                            m.d.sync += position.eq(0)
            with m.State("RUN"):               # the program with token at position
                m.d.comb += engine.start.eq(1)
                m.next = "RUNNING"
            with m.State("RUNNING"):
                with m.If(~engine.busy):
                    m.d.sync += position.eq(position + 1)
                    with m.If(engine.error):
                        m.d.sync += error.eq(1)
                    with m.If(remaining != 0):
                        m.next = "SCALE"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("SCALE"):             # the logits' scale, read from its register
                m.d.comb += engine.register.addr.eq(self._logit_scale)
                m.next = "READ"
            with m.State("READ"):              # the register as read, into a register of its own
                m.d.sync += [logit_scale.mant.eq(engine.register_data.value),
                             logit_scale.exp.eq(engine.register_data.exp)]
                m.next = "COEF"
            with m.State("COEF"):              # times log2(e)/T
                m.d.comb += [coef_mul.i.a.eq(logit_scale), coef_mul.i.b.eq(request.coef),
                             coef_mul.i.valid.eq(1)]
                m.next = "PRODUCT"
            with m.State("PRODUCT"):
                with m.If(coef_mul.o.valid):
                    m.d.sync += [coef.mant.eq(coef_mul.o.mant), coef.exp.eq(coef_mul.o.exp),
                                 index.eq(0), fed.eq(0), reading.eq(0)]
                    with m.If(coef_mul.o.invalid & ~request.greedy):
                        m.d.sync += error.eq(1)
                    m.next = "LOGITS"
            with m.State("LOGITS"):            # the logits to the sampler, one a cycle
                hold = reading & ~logits_in.i.ready        # the logit on access_data not yet taken
                issue = (index < vocab) & ~hold
                m.d.comb += [engine.access.addr.eq(self._logits + index - hold),
                             logits_in.i.valid.eq(reading), logits_in.i.payload.logit.eq(engine.access_data),
                             logits_in.i.payload.last.eq(fed == vocab - 1)]
                with m.If(issue):
                    m.d.sync += index.eq(index + 1)
                with m.If(~hold):
                    m.d.sync += reading.eq(issue)
                with m.If(reading & logits_in.i.ready):
                    m.d.sync += fed.eq(fed + 1)
                    with m.If(fed == vocab - 1):
                        m.next = "SAMPLE"
            with m.State("SAMPLE"):            # the token out, then through the layers unless the last
                last = (remaining == 1) | stopping | full
                m.d.comb += [sampler.o.ready.eq(self.o.ready), self.o.valid.eq(sampler.o.valid),
                             self.o.payload.token.eq(sampler.o.payload.token), self.o.payload.last.eq(last)]
                with m.If(sampler.o.valid & self.o.ready):
                    m.d.sync += [tokens.eq(tokens + 1), remaining.eq(remaining - 1),
                                 token.eq(sampler.o.payload.token)]
                    with m.If(sampler.o.payload.invalid):
                        m.d.sync += error.eq(1)
                    with m.If(last):
                        m.d.sync += remaining.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "RUN"
        return m
