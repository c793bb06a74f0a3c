"""``tritium chat``: a conversation with a board (or the virtual board, ``--sim``) over a
:class:`~fpga.host.link.BoardLink`. A conversation continues the board's context: each turn sends
the last generated token (the engine has not run it through the layers yet) and the new prompt,
and resets the context when the next turn would not fit.
"""

import time

from model.tokenizer import encode_text

from .link import BoardLink, LinkError


class Conversation:
    """Turns of prompt and generated text on one board context (see the module docstring)."""

    def __init__(self, link: BoardLink, tokenizer, context: int):
        self.link, self.tokenizer, self.context = link, tokenizer, context
        self.carry = []         # the last generated token, not yet through the layers
        self.position = 0
        self.cycles = []        # (cycles, tokens) of each turn's generation, for tok/s

    def turn(self, text: str, count: int, echo=None, **sampling) -> list[int]:
        text_ids = encode_text(self.tokenizer, text)    # unencodable text: before any traffic
        ids = self.carry + text_ids
        if self.position + len(ids) + count > self.context:
            self.link.reset()
            self.position, ids = 0, text_ids
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


def chat(console, conversation: Conversation, *, prompt=None, count: int, clock_mhz: float,
         simulated: bool = False, ids: bool = False, check_model=None, **sampling) -> int:
    """``tritium chat``'s turns: ``prompt`` once, or lines asked on the console until an empty
    one (or end of input); each turn's text as it arrives, its tok/s, its ids with ``ids``, and
    with ``check_model`` (an IntegerModel) whether the tokens are that model's. Returns the exit
    code. A text the tokenizer cannot encode ends a one-prompt chat (ValueError) and is asked
    again in an asked one; a link that breaks mid-turn ends the line before LinkError leaves."""
    tokenizer = conversation.tokenizer
    while True:
        text = prompt if prompt is not None else _ask(console)
        if text is None:
            return 0
        try:
            encode_text(tokenizer, text)
        except ValueError as e:
            if prompt is not None:
                raise
            console.print(f"[red]{e}[/red]")
            continue
        started = time.perf_counter()
        console.print(f"[bold]{text}[/bold]", end="")
        try:
            new = conversation.turn(text, count, echo=lambda piece: console.print(piece, end=""),
                                    **sampling)
        except LinkError:
            console.print()
            raise
        elapsed = time.perf_counter() - started
        cycles, tokens = conversation.cycles[-1]
        console.print()
        clock = clock_mhz * 1e6
        console.print(f"[dim]{len(new)} tokens in {elapsed:.2f} s here ({len(new) / elapsed:.1f} "
                      f"tok/s{' simulated' if simulated else ''}); {cycles / max(tokens, 1):,.0f} "
                      f"engine cycles a token = {clock * tokens / max(cycles, 1):,.0f} tok/s at "
                      f"{clock_mhz} MHz[/dim]")
        if ids:
            console.print(" ".join(map(str, new)))
        if check_model is not None:
            expected = check_model.generate(encode_text(tokenizer, text), count, **sampling)
            if new != expected:
                console.print(f"[red]differs from the integer model: {new} != {expected}[/red]")
                return 1
            console.print("[green]the same tokens as the integer model (model/integer.py)[/green]")
        if prompt is not None:
            return 0


def _ask(console):
    try:
        return console.input("[bold]> [/bold]") or None
    except (EOFError, KeyboardInterrupt):
        return None
