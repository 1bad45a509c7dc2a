"""ROM images: fixed-stride packing of per-row entries into lane-wide words, the block-RAM
placement rule and ``$readmemh`` text.  Kind-independent; :mod:`kofn.codegen.packing`
documents the layout and packs whole layers through the per-kind handlers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "RomImage",
    "LayerRoms",
    "BRAM_MIN_BITS",
    "BRAM_MIN_DEPTH",
    "RAMB18_SHAPES",
    "RAMB36_SHAPES",
    "rom_in_bram",
    "bram_cells",
    "steps_per_row",
    "pack_entries",
    "unpack_entries",
    "mem_lines",
]


@dataclass(frozen=True)
class RomImage:
    """A ROM of ``len(words)`` words of ``lanes * entry_bits`` bits each."""

    words: tuple[int, ...]
    entry_bits: int
    lanes: int

    @property
    def depth(self) -> int:
        return len(self.words)

    @property
    def word_bits(self) -> int:
        return self.entry_bits * self.lanes

    @property
    def bits(self) -> int:
        """Total storage, depth times word width."""
        return self.depth * self.word_bits

    @property
    def in_bram(self) -> bool:
        """Whether the generated RTL puts this ROM in block RAM (see :func:`rom_in_bram`)."""
        return rom_in_bram(self.depth, self.word_bits)


@dataclass(frozen=True)
class LayerRoms:
    index: RomImage
    weight: RomImage
    bias: RomImage
    steps: int  # S, words per row


#: A ROM goes to block RAM when it holds more than this many bits and is deeper than
#: BRAM_MIN_DEPTH words; otherwise it is LUT logic.  The RTL carries the choice as a
#: ``rom_style`` attribute, so Vivado and Yosys both follow it instead of their own heuristics.
BRAM_MIN_BITS = 4096
BRAM_MIN_DEPTH = 64
#: (depth, width) configurations of a RAMB18 and a RAMB36 (7-series and UltraScale+ alike).
RAMB18_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
RAMB36_SHAPES = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))


def rom_in_bram(depth: int, width: int) -> bool:
    """The ROM placement rule: block RAM above ``BRAM_MIN_BITS`` bits and ``BRAM_MIN_DEPTH`` words."""
    return depth * width > BRAM_MIN_BITS and depth > BRAM_MIN_DEPTH


def bram_cells(depth: int, width: int) -> tuple[int, int]:
    """``(RAMB18, RAMB36)`` cells holding a ``depth x width`` ROM.

    Each tiling uses one aspect ratio; the cheapest in RAMB18 equivalents wins, and on a
    tie the RAMB36 tiling (fewer cells), as Yosys's ``memory_libmap`` chooses (checked
    against it shape by shape in ``tests/codegen/test_synth.py``)."""
    def tiles(shapes):
        return min(-(-depth // d) * -(-width // w) for d, w in shapes)

    n18, n36 = tiles(RAMB18_SHAPES), tiles(RAMB36_SHAPES)
    return (n18, 0) if n18 < 2 * n36 else (0, n36)


def steps_per_row(k: int, lanes: int) -> int:
    """``S = ceil(k / lanes)``: ROM words (and MAC cycles) per output neuron."""
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return -(-k // lanes)


def pack_entries(values: np.ndarray, entry_bits: int, lanes: int) -> RomImage:
    """Pack unsigned ``values[rows, k]`` (each < 2**entry_bits) into a fixed-stride image."""
    values = np.asarray(values, dtype=np.int64)
    if values.ndim != 2:
        raise ValueError(f"values must be [rows, k], got shape {values.shape}")
    if values.size and (values.min() < 0 or values.max() >= (1 << entry_bits)):
        raise ValueError(f"a value does not fit in {entry_bits} unsigned bits")
    rows, k = values.shape
    s_per_row = steps_per_row(k, lanes)
    padded = np.zeros((rows, s_per_row * lanes), dtype=np.int64)
    padded[:, :k] = values
    words = []
    for r in range(rows):
        for s in range(s_per_row):
            word = 0
            for p in range(lanes):
                word |= int(padded[r, s * lanes + p]) << (p * entry_bits)
            words.append(word)
    return RomImage(words=tuple(words), entry_bits=entry_bits, lanes=lanes)


def unpack_entries(rom: RomImage, k: int) -> np.ndarray:
    """Inverse of :func:`pack_entries`: ``values[rows, k]``."""
    s_per_row = steps_per_row(k, rom.lanes)
    if rom.depth % s_per_row:
        raise ValueError(f"depth {rom.depth} is not a multiple of {s_per_row} words per row")
    rows = rom.depth // s_per_row
    mask = (1 << rom.entry_bits) - 1
    out = np.zeros((rows, s_per_row * rom.lanes), dtype=np.int64)
    for a, word in enumerate(rom.words):
        r, s = divmod(a, s_per_row)
        for p in range(rom.lanes):
            out[r, s * rom.lanes + p] = (word >> (p * rom.entry_bits)) & mask
    return out[:, :k]


def mem_lines(rom: RomImage) -> str:
    """``$readmemh`` text: one word per line, zero-padded hexadecimal, no address markers."""
    digits = max(1, -(-rom.word_bits // 4))
    return "".join(f"{w:0{digits}x}\n" for w in rom.words)
