"""Code generation: fixed-stride ROM packing, Verilog/HLS rendering, estimates. No torch here.

Each IR layer kind has one handler (:mod:`kofn.codegen.kinds`) holding all of its code."""

from .estimate import Latency, Resources, features, latency, memory_bits, resources
from .packing import LayerRoms, RomImage, pack_layer, unpack_layer
from .build import BuildPlan, axis_args, plan_build, render_build
from .plan import LayerPlan, default_lanes, plan_layers
from .render import Design, render, write_design

__all__ = [
    "BuildPlan",
    "axis_args",
    "plan_build",
    "render_build",
    "Design",
    "LayerPlan",
    "LayerRoms",
    "Latency",
    "Resources",
    "RomImage",
    "default_lanes",
    "features",
    "latency",
    "memory_bits",
    "pack_layer",
    "plan_layers",
    "render",
    "resources",
    "unpack_layer",
    "write_design",
]
