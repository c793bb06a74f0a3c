"""The virtual board opener: the SoC in Verilator (:mod:`sim.virtual_board`) behind a
pseudo-terminal, with a :class:`~fpga.host.link.BoardLink` on it, for ``tritium chat --sim``,
``tritium bench boards`` and the tests."""

import contextlib

from sim.virtual_board import BoardStartError, VirtualBoard, soc_params

from .link import LinkError, serial_link

__all__ = ["board_soc_params", "open_board", "soc_params"]


def board_soc_params(board, model_dir, *, vector: bool = False) -> dict:
    """The SoC that simulates ``board`` (a :class:`fpga.boards.Board`) with the model at
    ``model_dir``: the board's engine sizes (on the shared vector unit if ``vector``) and its clock,
    which sets the UART's divisor as on the board."""
    engine = board.vector_engine_parameters() if vector else board.engine_parameters()
    return soc_params(model_dir, engine, board.clock_mhz * 1e6)


@contextlib.contextmanager
def open_board(params: dict, *, timeout: float, status=None, netlist=None):
    """A :class:`~fpga.host.link.BoardLink` to a :class:`~sim.virtual_board.VirtualBoard` of
    ``params`` (``sim.virtual_board.soc_params``; its gate-level ``netlist`` if given, a
    :class:`fpga.flow.netlist.Netlist`); the board is closed after."""
    try:
        board = VirtualBoard(params, status=status, netlist=netlist)
    except BoardStartError as error:
        raise LinkError(str(error)) from None
    try:
        with serial_link(board.path, board.params["baud"], timeout) as link:
            yield link
    finally:
        board.close()
