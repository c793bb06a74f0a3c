"""The host side of a board: the serial link speaking the byte protocol (``link``), conversations
(``chat``) and the virtual board opener (``virtual``: the SoC in Verilator behind a
pseudo-terminal)."""
