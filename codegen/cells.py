"""Cell arithmetic shared by the per-kind resource estimates: DSP48 fit, LUT multiplexers
and LUT ROMs, block-RAM ROM cost, reachable multiplexer inputs, CSR storage.  Kind-independent
(:mod:`kofn.codegen.estimate` documents the model)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.rules import index_bits
from .rom import bram_cells, rom_in_bram

__all__ = ["DSP_PORTS", "operand_bits", "uses_dsp", "mux_luts", "rom_luts", "rom_cost", "reachable", "csr_bits",
           "vecbuf_features", "constant_bits", "StagePath", "mux_levels", "lutram_levels", "vecbuf_write_path"]

DSP_PORTS = {"xc7": (25, 18), "xcup": (27, 18)}  # DSP48E1 25x18, DSP48E2 27x18 signed multipliers


def operand_bits(L) -> int:
    """Bits of a lane's activation operand as a signed multiplier input."""
    return L.input_fmt.width + (0 if L.input_fmt.signed else 1)


def uses_dsp(a_bits: int, w_bits: int, family: str = "xc7") -> bool:
    """Whether an ``a_bits x w_bits`` signed multiply maps to one DSP48 of ``family``."""
    big, small = DSP_PORTS[family]
    lo, hi = sorted((a_bits, w_bits))
    return lo <= small and hi <= big and a_bits + w_bits >= 9


def mux_luts(n: int) -> int:
    """LUT6s of one bit of an n:1 multiplexer built as a tree of 4:1 muxes (one LUT6
    each; Yosys's synth_xilinx does not use MUXF7/MUXF8 for wide muxes by default)."""
    t = 0
    while n > 1:
        n = math.ceil(n / 4)
        t += n
    return t


def rom_luts(depth: int, width: int) -> int:
    """LUT6s of a ROM in logic: each output bit is a 64x1 LUT per 64 words, muxed by address."""
    if depth <= 1:
        return 0
    return width * (math.ceil(depth / 64) + mux_luts(math.ceil(depth / 64))) if depth > 64 else width


def rom_cost(depth: int, width: int) -> tuple[int, int]:
    """``(bram18 equivalents, lut)`` of a ``depth x width`` ROM placed by the RTL's rule."""
    if rom_in_bram(depth, width):
        n18, n36 = bram_cells(depth, width)
        return n18 + 2 * n36, 0
    return 0, rom_luts(depth, width)


def constant_bits(vals) -> tuple[int, int]:
    """``(ones, zeros)``: masks of the bits that are 1, and 0, in every one of ``vals``."""
    vals = np.asarray(vals, dtype=np.int64).ravel()
    return int(np.bitwise_and.reduce(vals)), int(np.bitwise_and.reduce(~vals))


def reachable(vals, n: int) -> int:
    """How many inputs below ``n`` agree with every bit that is constant across ``vals``
    (synthesis drops index bits that never change, and with them the other inputs)."""
    ones, zeros = constant_bits(vals)
    i = np.arange(n)
    return int((((i & ones) == ones) & ((i & zeros) == 0)).sum())


def csr_bits(rows: int, n: int, nnz: int, weight_bits: int, bias_bits: int) -> int:
    """Compressed sparse rows at the same sparsity: a weight and a column index per nonzero,
    ``rows + 1`` row pointers, plus the biases (which every storage holds)."""
    return nnz * (weight_bits + index_bits(n)) + (rows + 1) * index_bits(nnz + 1) + rows * bias_bits


def vecbuf_features(n: int, width: int, values: int, tagged: str = "") -> dict[str, dict[str, float]]:
    """Features of a ``kofn_vecbuf`` of ``n`` values (two banks), written ``values`` per beat
    (``tagged``: "pos", its beats bring their position and bank, so it keeps no counter of its
    own; "frame", they bring their bank and frame end, and it counts positions)."""
    beats = -(-n // values)
    # one clock enable per (bank, beat): the V values of a beat share it
    # the write is registered once: the beat's V values and its position pre-decoded
    # (kofn_vecbuf's sel_q, a one-hot per bank of the high half, and lo_q); "one" stands for
    # 6 flags, of which a tagged buffer has 4 and a counted one 5 (its write bank; done and
    # bank of the write; the two `full`)
    hi, lo = position_onehots(beats)
    return {"lut": {"we": 2 * beats, "one": 1.0},
            "ff": {"regs": 2 * n * width, "ctr": 0 if tagged == "pos" else index_bits(beats),
                   "wreg": values * width + 2 * hi + lo, "one": 4 / 6 if tagged else 5 / 6}}


def position_onehots(beats: int) -> tuple[int, int]:
    """``kofn_vecbuf``'s pre-decoded write position for ``beats`` positions: ``(high, low)``,
    the sizes of the one-hot of its high part (as many as the positions take) and of its low
    ``LB = CW // 2`` bits."""
    lb = index_bits(beats) // 2
    return ((beats - 1) >> lb) + 1, 1 << lb


def bank_ram(bank_n: int, width: int) -> tuple[int, bool]:
    """``(depth, lutram)`` of one bank memory of ``kofn_bankbuf`` holding ``bank_n`` values of
    ``width`` bits per frame: two frames at ``{half, address}`` (depth ``2 << index_bits``), in
    distributed RAM unless the ROM placement rule (:func:`kofn.codegen.rom.rom_in_bram`) picks
    block RAM."""
    depth = 2 << index_bits(bank_n)
    return depth, not rom_in_bram(depth, width)


def bankbuf_features(n: int, banks: int, width: int, values: int, tagged: str = "") -> dict[str, dict[str, float]]:
    """Features of a ``kofn_bankbuf`` of ``n`` values in ``banks`` memories, written ``values``
    per beat: the distributed RAM (per 64-word column of a bit), each bank's value select
    (a ``values``:1 multiplexer), its position and address counters and the registered write;
    the read registers (``tagged``: its beats bring their bank, so it keeps no bank flag)."""
    beats = -(-n // values)
    nb = n // banks
    depth, lutram = bank_ram(nb, width)
    la, jw = index_bits(nb), index_bits(banks)
    return {"lut": {"ram": banks * width * -(-depth // 64) if lutram else 0,
                    "wmux": banks * width * mux_luts(values) if values > 1 else 0,
                    "ctr": banks * (la + jw) + index_bits(beats), "one": 1.0},
            "ff": {"rd": banks * width, "wreg": banks * (width + la + 2),
                   "ctr": banks * (la + jw) + index_bits(beats) + (2 if tagged else 3), "one": 1.0}}


def bankbuf_write_path(inst: str, n: int, banks: int, width: int, values: int) -> StagePath:
    """``kofn_bankbuf``'s registered write: each bank's value select (a ``values``:1 multiplexer
    driven by its position register) into the write register; the beat's data feeds every bank."""
    return StagePath(inst, "write", 1 + mux_levels(values), index_bits(n // banks), banks * width)


# -- register-to-register paths (the Fmax model, kofn.codegen.fmax) -------------------------
@dataclass(frozen=True)
class StagePath:
    """One class of register-to-register path the RTL builds, described before synthesis:
    ``levels`` of LUT logic (a 2**b:1 multiplexer or a ROM of b address bits counts
    :func:`mux_levels`), the longest ``carry`` chain on it (bits of an adder or compare),
    and the ``fanout`` of its widest driver (LUT inputs one register bit feeds).  The Fmax
    model (:mod:`kofn.codegen.fmax`) turns these into a delay."""

    instance: str  # the RTL instance (u_l0_mac, u_l1_buf, ...)
    stage: str  # which of its paths ("gather 1", "rom read", "accumulate", ...)
    levels: int
    carry: int = 0
    fanout: int = 1

    def as_dict(self) -> dict:
        return {"instance": self.instance, "stage": self.stage, "levels": self.levels, "carry": self.carry,
                "fanout": self.fanout}


def vecbuf_write_path(inst: str, n: int, width: int, values: int) -> StagePath:
    """``kofn_vecbuf``'s registered write: each beat's enable in a bank is one AND2 of two
    pre-decoded registers (:func:`position_onehots`), the clock enable of ``values * width``
    registers; the widest driver, a low-half one-hot bit, feeds ``2 * high`` enables."""
    hi, _ = position_onehots(-(-n // values))
    return StagePath(inst, "write", 1, 0, 2 * hi * values * width)


def mux_levels(inputs: int) -> int:
    """LUT levels of an ``inputs``:1 multiplexer (or a LUT ROM of that depth): a level per
    two select bits (a 4:1 multiplexer is one LUT6, or a LUT4 pair and a hard mux); 1 for a
    single input (the register's own input logic)."""
    return max(1, -(-index_bits(max(2, inputs)) // 2))


def lutram_levels(depth: int) -> int:
    """LUT levels of a distributed-RAM read of ``depth`` words: the 16- or 64-word cell, then
    a multiplexer over the cells."""
    return 1 + (mux_levels(-(-depth // 16)) if depth > 16 else 0)
