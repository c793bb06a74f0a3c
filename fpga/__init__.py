"""Boards, builds on open toolchains (yowasp yosys + nextpnr), flashing, and the ``tritium`` CLI."""
