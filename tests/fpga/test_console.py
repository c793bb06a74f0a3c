"""fpga/console.py: status lines show on a pipe (one per phase), not only as a terminal spinner."""

import io

from rich.console import Console

from fpga.console import status


def test_status_prints_each_phase_once_off_a_terminal():
    out = io.StringIO()
    con = Console(file=out, force_terminal=False, width=40)
    with status(con, "ulx3s-85f: ") as say:
        for text in ("converting the SoC to Verilog", "building the Verilator model (minutes the "
                     "first time, then cached in /a/long/path/build/sim)", "building the Verilator "
                     "model (minutes the first time, then cached in /a/long/path/build/sim)", "running"):
            say(text)
    assert out.getvalue().splitlines() == [
        "ulx3s-85f: converting the SoC to Verilog",
        "ulx3s-85f: building the Verilator model (minutes the first time, then cached in "
        "/a/long/path/build/sim)",
        "ulx3s-85f: running"]


def test_status_on_a_terminal_is_a_spinner_not_lines():
    out = io.StringIO()
    con = Console(file=out, force_terminal=True, width=80)
    with status(con) as say:
        say("running")
    assert "running\n" not in out.getvalue()
