"""The boards' USB bridges on this machine: which are plugged in (Linux's sysfs, else pyserial's
port list), their serial ports, whether this user may open them, and what to do where not (the
udev rule, its file, the groups to join, the command that reloads the rules: printed, never run).

Everything that looks at the machine goes through a :class:`Machine`, whose sysfs root, port list,
access check and groups the tests replace with fakes.

USB IDs (vendor:product), from openFPGALoader (github trabucayre/openFPGALoader, commit d43508fe):
its cable list, src/cable.hpp, ``{"ft231X", FTDI_BB(0x0403, 0x6015, FTDI_INTF_A, ...)}`` and
``{"ft2232", FTDI_SER(0x0403, 0x6010, FTDI_INTF_A, ...)}``; its board list, src/board.hpp, pairs
``ulx3s`` with ``ft231X`` and ``ice40_generic`` (the iCEBreaker, doc/boards.yml), ``tangnano9k``
and ``tangprimer20k`` with ``ft2232``: the Tang boards' BL702 bridges present themselves to
the host as an FT2232 (0403:6010). Its udev rules (70-openfpgaloader.rules,
99-openfpgaloader.rules) list the same IDs. A two-port FT2232 is programmed through interface A
(``FTDI_INTF_A``), so the FPGA's UART is the second port, interface B (USB interface 1).
"""

import dataclasses
import getpass
import os
import sys
from pathlib import Path
from typing import Callable

try:
    import grp
except ImportError:         # Windows: no groups, and no permission advice either
    grp = None

SYSFS_USB = Path("/sys/bus/usb/devices")
RULES_FILE = "/etc/udev/rules.d/70-tritium.rules"
RELOAD = "sudo udevadm control --reload-rules && sudo udevadm trigger"
USB_GROUP = "plugdev"       # openFPGALoader's 99-openfpgaloader.rules gives its devices to plugdev


@dataclasses.dataclass(frozen=True)
class Bridge:
    """A board's USB bridge: its IDs and the USB interface whose serial port is the FPGA's UART."""
    chip: str
    vid: int
    pid: int
    uart_interface: int = 0     # USB interface number (FT2232: 0 is A, programming; 1 is B, UART)
    cable: str = ""             # openFPGALoader's cable name

    @property
    def id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    def rule(self) -> str:
        """The udev rule line, as openFPGALoader's rules files write it (plugdev and uaccess)."""
        return (f'SUBSYSTEM=="usb|tty", ATTRS{{idVendor}}=="{self.vid:04x}", '
                f'ATTRS{{idProduct}}=="{self.pid:04x}", MODE="664", GROUP="{USB_GROUP}", '
                f'TAG+="uaccess"')


# src/cable.hpp line 115 (ft231X) and line 113 (ft2232), commit d43508fe
FT231X = Bridge("FTDI FT231X", 0x0403, 0x6015, uart_interface=0, cable="ft231X")
FT2232H = Bridge("FTDI FT2232H", 0x0403, 0x6010, uart_interface=1, cable="ft2232")
BL702 = dataclasses.replace(FT2232H, chip="BL702 (an FT2232 to the host)")

# by openFPGALoader board name (Board.loader_board); src/board.hpp lines 198 (ice40_generic),
# 252 (tangnano9k), 254 (tangprimer20k), 272 (ulx3s); the iCEBreaker is ice40_generic there
# (doc/boards.yml).
BRIDGES = {"ulx3s": FT231X, "ice40_generic": FT2232H, "tangnano9k": BL702, "tangprimer20k": BL702}


def bridge(board) -> Bridge | None:
    return BRIDGES.get(board.loader_board)


@dataclasses.dataclass(frozen=True)
class UsbDevice:
    """A USB device from sysfs (``/sys/bus/usb/devices/1-1.2``)."""
    name: str               # sysfs name, e.g. 1-1.2
    vid: int
    pid: int
    product: str = ""
    serial: str = ""
    busnum: int | None = None
    devnum: int | None = None

    @property
    def node(self) -> str | None:
        """The device node libusb (openFPGALoader) opens."""
        if self.busnum is None or self.devnum is None:
            return None
        return f"/dev/bus/usb/{self.busnum:03d}/{self.devnum:03d}"


@dataclasses.dataclass(frozen=True)
class SerialPort:
    device: str             # /dev/ttyUSB1
    vid: int | None = None
    pid: int | None = None
    interface: int | None = None        # USB interface number, where pyserial says (Linux)
    serial: str = ""
    description: str = ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def usb_devices(root: Path = SYSFS_USB) -> list[UsbDevice]:
    """The USB devices sysfs lists under ``root`` (interfaces, ``1-1:1.0``, and entries without
    IDs skipped); [] where there is no such directory (not Linux)."""
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if ":" in entry.name:
            continue
        vid, pid = _read(entry / "idVendor"), _read(entry / "idProduct")
        try:
            vid, pid = int(vid, 16), int(pid, 16)
        except ValueError:
            continue
        numbers = []
        for name in ("busnum", "devnum"):
            text = _read(entry / name)
            numbers.append(int(text) if text.isdigit() else None)
        found.append(UsbDevice(entry.name, vid, pid, _read(entry / "product"),
                               _read(entry / "serial"), *numbers))
    return found


def _interface(location) -> int | None:
    """The USB interface number in pyserial's Linux ``location`` (``1-1.2:1.1`` → 1)."""
    if not location or ":" not in location:
        return None
    tail = location.rsplit(":", 1)[1].split(".")
    return int(tail[-1]) if len(tail) == 2 and tail[-1].isdigit() else None


def as_port(info) -> SerialPort:
    """A :class:`SerialPort` from pyserial's ``ListPortInfo`` (or anything with its attributes)."""
    return SerialPort(info.device, getattr(info, "vid", None), getattr(info, "pid", None),
                      _interface(getattr(info, "location", None)),
                      getattr(info, "serial_number", None) or "",
                      getattr(info, "description", None) or "")


def _comports():
    from serial.tools.list_ports import comports

    return comports()


def _access(path: str) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def _group_of(path: str) -> str | None:
    try:
        gid = os.stat(path).st_gid
    except OSError:
        return None
    if grp is None:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_groups() -> set[str]:
    names = set()
    if grp is None:
        return names
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            pass
    return names


def _group_exists(name: str) -> bool:
    if grp is None:
        return False
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


@dataclasses.dataclass
class Machine:
    """What this machine has, each part replaceable (tests pass fakes)."""
    sysfs: Path = SYSFS_USB
    comports: Callable = _comports                  # pyserial's list, or fakes with its attributes
    access: Callable[[str], bool] = _access         # may this user read and write the node?
    group_of: Callable[[str], str | None] = _group_of
    user_groups: Callable[[], set] = _user_groups
    group_exists: Callable[[str], bool] = _group_exists
    user: str = dataclasses.field(default_factory=getpass.getuser)
    linux: bool = sys.platform.startswith("linux")

    def usb(self) -> list[UsbDevice]:
        return usb_devices(self.sysfs)

    def ports(self) -> list[SerialPort]:
        return sorted((as_port(p) for p in self.comports()), key=lambda p: p.device)


def matches(b: Bridge, vid, pid) -> bool:
    return (vid, pid) == (b.vid, b.pid)


def board_ports(board, ports: list[SerialPort]) -> list[SerialPort]:
    """The serial ports that can be ``board``'s UART: its bridge's IDs on the UART's interface
    (a two-port FT2232's interface B; either where the interface is not known)."""
    b = bridge(board)
    if b is None:
        return []
    return [p for p in ports if matches(b, p.vid, p.pid)
            and (p.interface is None or p.interface == b.uart_interface)]


def describe(port: SerialPort) -> str:
    extra = ", ".join(x for x in (port.description, port.serial and f"serial {port.serial}") if x)
    return f"{port.device} ({extra})" if extra else port.device


def pick_port(board, machine: Machine | None = None) -> SerialPort:
    """The one serial port that can be ``board``'s (``tritium chat`` without ``--port``); none,
    several, or one this user may not open raise LinkError saying what to do."""
    from .link import LinkError

    machine = machine or Machine()
    b = bridge(board)
    found = board_ports(board, machine.ports())
    if not found:
        what = f"the {b.chip}, USB {b.id}" if b else "its USB bridge"
        raise LinkError(f"no serial port of a {board.name} ({what}) found: is the board plugged in "
                        f"(with a data cable)? tritium doctor --board {board.name} checks this "
                        f"machine; --sim talks to the simulated board")
    if len(found) > 1:
        raise LinkError(f"{len(found)} serial ports could be the {board.name}'s: "
                        + ", ".join(describe(p) for p in found) + "; choose one with --port")
    port = found[0]
    if machine.linux and not machine.access(port.device):
        raise LinkError(f"{port.device} is the {board.name}'s serial port, but {machine.user} may not "
                        f"open it: {join_groups_command(machine, [machine.group_of(port.device)])}; "
                        f"tritium doctor --board {board.name} says more")
    return port


def join_groups_command(machine: Machine, groups) -> str:
    """``sudo usermod -aG ...`` for the groups the user is not in yet (then log out and in)."""
    have = machine.user_groups()
    wanted = sorted({g for g in groups if g and g != "root" and g not in have})
    if not wanted:
        return "log out and in again (or unplug and replug the board)"
    create = [g for g in wanted if not machine.group_exists(g)]
    prefix = "".join(f"sudo groupadd {g} && " for g in create)
    return f"{prefix}sudo usermod -aG {','.join(wanted)} {machine.user}, then log out and in"
