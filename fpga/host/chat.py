"""``tritium chat``: a conversation with a board (or the virtual board, ``--sim``) over a
:class:`~fpga.host.link.BoardLink`. A conversation continues the board's context: each turn sends
the last generated token (the engine has not run it through the layers yet) and the new prompt,
and resets the context when the next turn would not fit.
"""

from .link import BoardLink


class Conversation:
    """Turns of prompt and generated text on one board context (see the module docstring)."""

    def __init__(self, link: BoardLink, tokenizer, context: int):
        self.link, self.tokenizer, self.context = link, tokenizer, context
        self.carry = []         # the last generated token, not yet through the layers
        self.position = 0
        self.cycles = []        # (cycles, tokens) of each turn's generation, for tok/s

    def turn(self, text: str, count: int, echo=None, **sampling) -> list[int]:
        ids = self.carry + self.tokenizer.encode(text).ids
        if self.position + len(ids) + count > self.context:
            self.link.reset()
            self.position, ids = 0, self.tokenizer.encode(text).ids
            if len(ids) + count > self.context:
                raise ValueError(f"a prompt of {len(ids)} tokens and {count} new ones exceed the "
                                 f"context of {self.context}")
        self.position = self.link.prompt(ids)
        before = self.link.status()["cycles"]
        new = []
        for token in self.link.generate(count, **sampling):
            new.append(token)
            if echo:
                echo(self.tokenizer.decode([token]))
        done = self.link.done
        cycles = (self.link.status()["cycles"] - before) & 0xFFFFFFFF
        self.cycles.append((cycles, len(new)))
        self.position = done["position"]
        self.carry = new[-1:]
        return new
