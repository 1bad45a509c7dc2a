"""kofn: k-out-of-n pruned, quantized networks to bit-exact FPGA IP.

The package is split along the flow: ``kofn.pruning`` (training, torch),
``kofn.ir`` (the export boundary), ``kofn.reference`` (the integer golden model),
``kofn.codegen`` (packing, templates, estimates) and ``kofn.sim`` (RTL and C
simulation).  Only ``kofn.pruning`` imports torch.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
