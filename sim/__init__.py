"""cocotb testbenches (tb_*.py) and the harness that runs them on Icarus and Verilator, checking
the gateware bit for bit against model/integer.py."""
