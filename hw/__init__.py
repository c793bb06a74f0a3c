"""Amaranth 0.5 gateware for BitNet b1.58: the ternary matmul array, the absmax quantizer, vector
units, sequencer and SoC. Each block's golden reference is a function of model/integer.py."""
