"""kofn: k-out-of-n pruned, quantized networks to bit-exact FPGA IP.

Layers, lowest first; a module imports only from its own layer or lower ones
(``tests/test_layering.py`` enforces it):

* ``kofn.core``: fixed-point arithmetic, the IR, the integer reference (numpy only);
* ``kofn.pruning`` (training, torch), ``kofn.codegen`` (packing, templates,
  estimates) and ``kofn.sim`` (RTL and C simulation), independent of each other;
* ``kofn.app``: the command line, the flow pipeline, reports, compare, explore, interop.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
