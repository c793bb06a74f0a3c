"""The engine's program: the steps of one BitNet b1.58 position, generated from the model config.

The :class:`~hw.engine.Engine`'s sequencer steps through this list (a ROM of decoded instructions,
one per step), each instruction starting one phase of ``model.integer.IntegerModel.step``:

=========  ===========================================================================
op         what the engine does
=========  ===========================================================================
EMBED      the token's embedding row into the residual buffer ``H``
NORM       ``rms_quantize`` of a source vector with norm ``index``'s gains into a sink:
           sources ``H`` (the residual buffer), ``ATTENTION`` (every query head attended in
           turn, their outputs streamed in) or ``GATED`` (the gated activation's output);
           sinks ``LINEAR`` (the matmul's activation buffer) or ``LM_HEAD`` (the logits)
MATMUL     ``ternary_matmul`` by matrix ``index`` (scale ``D·γ``), its outputs routed to ``Q``
           (RoPE, per-head int8 into the query buffer), ``K`` (RoPE, per-head int8 into the KV
           cache), ``V`` (per-head int8 into the KV cache), ``RESIDUAL`` (dequantized and added
           into ``H``), ``GATE`` (the gate buffer) or ``UP`` (with the gate buffer into the gated
           activation)
STEP       the position is done: ``position + 1``; a prompt token stops here
SAMPLE     the sampler's token is emitted; the sequencer stops after the requested count,
           else the token is fed back and the program starts over
=========  ===========================================================================

A prompt token (the ``TOKEN`` command) runs ``BODY`` (from 0 to STEP); ``GENERATE`` starts at
``head_start`` (final norm, LM head, sample) and loops ``BODY`` + head until its count is reached.
"""

import dataclasses
import enum

from model.config import BitNetConfig


class Op(enum.IntEnum):
    EMBED = 0
    NORM = 1
    MATMUL = 2
    STEP = 3
    SAMPLE = 4


class Source(enum.IntEnum):
    H = 0
    ATTENTION = 1
    GATED = 2


class Sink(enum.IntEnum):
    LINEAR = 0
    LM_HEAD = 1


class Route(enum.IntEnum):
    Q = 0
    K = 1
    V = 2
    RESIDUAL = 3
    GATE = 4
    UP = 5


# Per layer, in model.integer's order: the matrices (TernaryLinear's index = layer·7 + j) and norms.
MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
NORMS = ("input_layernorm", "attn_sub_norm", "post_attention_layernorm", "ffn_sub_norm")


@dataclasses.dataclass(frozen=True)
class Instruction:
    op: Op
    layer: int = 0
    index: int = 0          # NORM: the norm (layer·4 + j, or the final norm); MATMUL: the matrix
    source: Source = Source.H
    sink: Sink = Sink.LINEAR
    route: Route = Route.Q
    name: str = ""          # what model.integer calls this step (the taps' names)


def matrix_index(layer: int, name: str) -> int:
    return layer * len(MATRICES) + MATRICES.index(name)


def norm_index(layer: int, name: str) -> int:
    return layer * len(NORMS) + NORMS.index(name)


def program(config: BitNetConfig) -> list[Instruction]:
    """Every step of a position (``BODY``) then of the LM head, for ``config``."""
    steps = [Instruction(Op.EMBED, name="embed")]
    for layer in range(config.num_hidden_layers):
        def norm(name, source=Source.H):
            return Instruction(Op.NORM, layer, norm_index(layer, name), source=source, name=name)

        def matmul(name, route):
            return Instruction(Op.MATMUL, layer, matrix_index(layer, name), route=route, name=name)

        steps += [norm("input_layernorm"),
                  matmul("q_proj", Route.Q), matmul("k_proj", Route.K), matmul("v_proj", Route.V),
                  norm("attn_sub_norm", Source.ATTENTION),
                  matmul("o_proj", Route.RESIDUAL),
                  norm("post_attention_layernorm"),
                  matmul("gate_proj", Route.GATE), matmul("up_proj", Route.UP),
                  norm("ffn_sub_norm", Source.GATED),
                  matmul("down_proj", Route.RESIDUAL)]
    final = len(NORMS) * config.num_hidden_layers
    return steps + [Instruction(Op.STEP, name="step"),
                    Instruction(Op.NORM, index=final, sink=Sink.LM_HEAD, name="norm"),
                    Instruction(Op.SAMPLE, name="sample")]


def head_start(steps: list[Instruction]) -> int:
    """The index of the first instruction after STEP: where GENERATE begins."""
    return next(i for i, s in enumerate(steps) if s.op == Op.STEP) + 1
