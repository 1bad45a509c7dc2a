"""Simulation: cocotb + Verilator for the RTL, g++ C simulation for the HLS C++. No torch here."""

from .hls_csim import CsimResult, build_csim, run_csim
from .tools import ToolNotFound, ap_types_include, verilator_env

__all__ = ["CsimResult", "ToolNotFound", "ap_types_include", "build_csim", "run_csim", "verilator_env"]
