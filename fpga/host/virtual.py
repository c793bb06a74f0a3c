"""The virtual board opener: the SoC in Verilator (:mod:`sim.virtual_board`) behind a
pseudo-terminal, with a :class:`~fpga.host.link.BoardLink` on it, for ``tritium chat --sim``,
``tritium bench boards`` and the tests."""

import contextlib

from sim.virtual_board import BoardStartError, VirtualBoard, soc_params

from .link import LinkError, serial_link

__all__ = ["open_board", "soc_params"]


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
