"""Code generation: fixed-stride ROM packing, Verilog/HLS rendering, estimates. No torch here."""

from .estimate import Latency, Resources, latency, memory_bits, resources
from .packing import LayerRoms, RomImage, pack_layer, unpack_layer
from .render import Design, LayerPlan, default_lanes, plan_layers, render, write_design

__all__ = [
    "Design",
    "LayerPlan",
    "LayerRoms",
    "Latency",
    "Resources",
    "RomImage",
    "default_lanes",
    "latency",
    "memory_bits",
    "pack_layer",
    "plan_layers",
    "render",
    "resources",
    "unpack_layer",
    "write_design",
]
