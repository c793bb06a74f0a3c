"""The virtual board opener: the SoC in Verilator (:mod:`sim.virtual_board`) behind a
pseudo-terminal, with a :class:`~fpga.host.link.BoardLink` on it, for ``tritium chat --sim``,
``tritium bench boards`` and the tests."""

import contextlib

from sim.virtual_board import VirtualBoard, soc_params

from .link import serial_link

__all__ = ["open_board", "soc_params"]


@contextlib.contextmanager
def open_board(params: dict, *, timeout: float, status=None):
    """A :class:`~fpga.host.link.BoardLink` to a :class:`~sim.virtual_board.VirtualBoard` of
    ``params`` (``sim.virtual_board.soc_params``); the board is closed after."""
    board = VirtualBoard(params, status=status)
    try:
        with serial_link(board.path, board.params["baud"], timeout) as link:
            yield link
    finally:
        board.close()
