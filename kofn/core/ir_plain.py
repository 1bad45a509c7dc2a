"""The IR's layers without weights: max pooling, global average pooling and the residual add.
Frozen dataclasses holding formats; they validate themselves on construction.  Import them
from :mod:`kofn.core.ir`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import FixedFormat
from .ir_layers import _check_rounding

__all__ = ["MaxPool2dLayer", "AddLayer", "GlobalAvgPoolLayer"]


@dataclass(frozen=True, eq=False)
class MaxPool2dLayer:
    """``size x size`` max pooling with stride ``size`` on an HWC image (trailing rows and
    columns that do not fill a window are dropped, as in ``torch.nn.MaxPool2d``).
    Codes pass through unchanged: ``output_fmt`` is ``input_fmt``."""

    name: str
    in_shape: tuple[int, int, int]
    input_fmt: FixedFormat
    size: int = 2

    kind = "maxpool"
    image = True
    weighted = False
    relu = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        if self.size != 2:
            raise ValueError(f"layer {self.name!r}: only 2x2 max pooling is supported, got {self.size}")
        if len(self.in_shape) != 3 or self.in_shape[0] < self.size or self.in_shape[1] < self.size:
            raise ValueError(f"layer {self.name!r}: in_shape {self.in_shape} is smaller than the {self.size}x{self.size} window")

    @property
    def output_fmt(self) -> FixedFormat:
        return self.input_fmt

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, c = self.in_shape
        return (h // self.size, w // self.size, c)

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    def to_json(self) -> dict:
        return {"kind": "maxpool", "name": self.name, "in_shape": list(self.in_shape), "size": self.size,
                "input_fmt": self.input_fmt.to_dict()}


def _shape(where: str, shape) -> tuple[int, ...]:
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ValueError(f"{where}: shape must be (n,) or (H, W, C), each >= 1, got {shape}")
    return shape


@dataclass(frozen=True, eq=False)
class AddLayer:
    """The join of two branches, a residual block's ``relu(main + shortcut)``: both inputs
    have ``shape``; input 0 is in ``a_fmt``, input 1 in ``b_fmt`` (the two producers' output
    formats), the sum is :func:`kofn.core.fixed.add_codes` into ``output_fmt`` (aligned by
    shifts, exact, then rounded and saturated, ReLU last)."""

    name: str
    shape: tuple[int, ...]  # (H, W, C) or (n,)
    a_fmt: FixedFormat
    b_fmt: FixedFormat
    output_fmt: FixedFormat
    relu: bool = False
    rounding: str = "half_up"

    kind = "add"
    weighted = False
    arity = 2

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        object.__setattr__(self, "shape", _shape(where, self.shape))
        _check_rounding(self.rounding, where)

    @property
    def image(self) -> bool:
        return len(self.shape) == 3

    @property
    def input_fmts(self) -> tuple[FixedFormat, FixedFormat]:
        return (self.a_fmt, self.b_fmt)

    @property
    def input_fmt(self) -> FixedFormat:
        """Input 0's format (input 1's is ``b_fmt``)."""
        return self.a_fmt

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def in_size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def out_size(self) -> int:
        return self.in_size

    def to_json(self) -> dict:
        return {"kind": "add", "name": self.name, "shape": list(self.shape), "relu": self.relu,
                "a_fmt": self.a_fmt.to_dict(), "b_fmt": self.b_fmt.to_dict(), "output_fmt": self.output_fmt.to_dict(),
                **({"rounding": self.rounding} if self.rounding != "half_up" else {})}


@dataclass(frozen=True, eq=False)
class GlobalAvgPoolLayer:
    """Global average pooling of an ``(H, W, C)`` image to a ``1 x 1 x C`` image (which a
    dense layer reads as the vector of its C channels): per channel the exact sum of its
    ``H * W`` codes, then :func:`kofn.core.fixed.avg_pool_codes` into ``output_fmt`` (the
    division by ``H * W`` rounded half up, exact for any area)."""

    name: str
    in_shape: tuple[int, int, int]
    input_fmt: FixedFormat
    output_fmt: FixedFormat

    kind = "gap"
    image = True  # reads an HWC image, writes a 1 x 1 x C one
    weighted = False
    relu = False

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        object.__setattr__(self, "in_shape", _shape(where, self.in_shape))
        if len(self.in_shape) != 3:
            raise ValueError(f"{where}: global average pooling reads an image (H, W, C), got {self.in_shape}")

    @property
    def area(self) -> int:
        return self.in_shape[0] * self.in_shape[1]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (1, 1, self.in_shape[2])

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def out_size(self) -> int:
        return self.in_shape[2]

    def to_json(self) -> dict:
        return {"kind": "gap", "name": self.name, "in_shape": list(self.in_shape),
                "input_fmt": self.input_fmt.to_dict(), "output_fmt": self.output_fmt.to_dict()}
