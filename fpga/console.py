"""The commands' terminal: one rich :class:`~rich.console.Console`, and :func:`status` for long
steps: a spinner on a terminal, one plain line per phase elsewhere (a pipe, ``make demo | cat``, a
CI log), where a spinner shows nothing at all."""

import contextlib


def console():
    from rich.console import Console

    return Console(highlight=False)


@contextlib.contextmanager
def status(con, prefix: str = ""):
    """Yields ``say(text)``: the phase now under way (``prefix`` before it), shown as a spinner's
    text on a terminal, else printed once as a dim line."""
    if con.is_terminal:
        with con.status("") as spinner:
            yield lambda text: spinner.update(f"[dim]{prefix}{text}[/dim]")
        return
    said = []

    def say(text):
        if not said or said[-1] != text:
            said.append(text)
            con.print(f"{prefix}{text}", style="dim", markup=False, soft_wrap=True)
    yield say
