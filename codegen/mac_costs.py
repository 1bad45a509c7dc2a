"""What the sparse MAC core (``kofn_dense``) costs: the resource side of
:class:`kofn.codegen.handler.MacHandler`, kept apart from its packing and rendering.

:class:`MacCosts` holds the ROMs a core stores, its DSPs, the structural features the LUT and
FF estimate weighs (:mod:`kofn.codegen.estimate`, coefficients in
:mod:`kofn.codegen.coefficients`), the pipelined core's registers, whether it keeps select
copies, its register-to-register paths (the Fmax model's input, :mod:`kofn.codegen.fmax`) and
its memory bits.  It is a mixin of :class:`~kofn.codegen.handler.MacHandler` and reads the
layer's shape through it: ``kernel_level``, ``banks``, ``lane_n``, ``df_mem``, ``df_banks``,
``df_pipeline``, ``entries_per_row`` and ``image``.
"""

from __future__ import annotations

from ..core.rules import index_bits
from .cells import (StagePath, bank_ram, constant_bits, csr_bits, lutram_levels, mux_levels, mux_luts, operand_bits,
                    reachable, rom_luts, uses_dsp)
from .rom import RomImage, unpack_entries

__all__ = ["MacCosts"]


class MacCosts:
    """Resources, registers, paths and memory of a layer on the MAC core (a mixin of
    :class:`~kofn.codegen.handler.MacHandler`; see the module docstring for what it reads)."""

    def roms(self, plan) -> tuple[RomImage, ...]:
        return (plan.roms.index, plan.roms.weight, plan.roms.bias)

    def dsp(self, plan, family: str) -> int:
        L = plan.layer
        return plan.lanes if uses_dsp(operand_bits(L), L.weight_fmt.width, family) else 0

    def lane_inputs(self, plan, padded: bool = False) -> list[int]:
        """Per MAC lane, how many of the layer's inputs its multiplexer can select (``padded``:
        counting the index's whole range, 2**bits, as a bank's per-lane array muxes)."""
        p = plan
        idx = unpack_entries(p.roms.index, p.steps * p.lanes)
        n = self.lane_n(p.layer)
        return [reachable(idx[:, q :: p.lanes], 1 << index_bits(n) if padded else n) for q in range(p.lanes)]

    def features(self, plan, family: str, df: bool = False) -> dict[str, dict[str, float]]:
        """The MAC core's features ``core_lut`` and ``core_ff`` (``df``: as a dataflow stage,
        whose results leave as a stream and whose dense input has two banks)."""
        p, L = plan, plan.layer
        a_bits = operand_bits(L)
        dsp = uses_dsp(a_bits, L.weight_fmt.width, family)
        roms = self.roms(p)
        acc_w = L.accumulator.width
        rq_w = max(acc_w, L.output_fmt.width + 1) + 1
        prod_w = a_bits + L.weight_fmt.width
        kmode = self.kernel_level(L)
        mem = df and self.df_mem(L)  # the lanes read memories: no multiplexers, no bank select
        return {
            "core_lut": {
                # lanes over all n inputs, or (bmux) each over its bank, as per-lane arrays
                "mux": 0 if mem or self.banks(L) > 1 else L.input_fmt.width * sum(mux_luts(n) for n in self.lane_inputs(p)),
                "bmux": L.input_fmt.width * sum(mux_luts(n) for n in self.lane_inputs(p, padded=True))
                if self.banks(L) > 1 and not mem else 0,
                "kmode": p.lanes * index_bits(L.n) if kmode else 0,
                "rom": sum(rom_luts(r.depth, r.word_bits) for r in roms if not r.in_bram),
                "mul": 0 if dsp else p.lanes * L.input_fmt.width * L.weight_fmt.width,
                "add": (p.lanes + 1) * acc_w + rq_w if not df else 0,
                "tree": (p.lanes - 1) * acc_w if df else 0,  # the lanes' adder tree (fabric adders)
                "sel": p.lanes * p.steps if df and kmode else 0,  # per-step kernel/tap tables
                "outw": 0 if df else L.rows * L.output_fmt.width,
                "bank": L.input_fmt.width * self._bank_mux(plan) if df and not self.image and not mem else 0,
                "one": 1.0,
            },
            "core_ff": {
                # a ROM in logic keeps its read register on the address side (shared with the
                # counter); the DSP's A/B/M/P registers absorb the lanes' operands and products
                "idx_q": p.roms.index.word_bits if not p.roms.index.in_bram else 0,
                "w_q": p.roms.weight.word_bits if not p.roms.weight.in_bram else 0,
                "prod": 0 if dsp else p.lanes * prod_w,
                "out": L.rows * L.output_fmt.width,
                "acc": acc_w + rq_w,
                "ctrl": index_bits(p.depth) + index_bits(p.steps) + 4 * index_bits(L.rows),
                "kctr": p.lanes * (index_bits(L.taps) + index_bits(L.k)) if kmode else 0,
                "one": 1.0,
            } if not df else {
                # dataflow: no output registers (results leave as a stream); the registers the
                # RTL declares: counters and their pipeline copies, the bias read, the accumulator
                "idx_q": p.roms.index.word_bits if not p.roms.index.in_bram else 0,
                "w_q": p.roms.weight.word_bits if not p.roms.weight.in_bram else 0,
                "prod": 0 if dsp else p.lanes * prod_w,
                "acc": acc_w,
                "bias": L.bias_fmt.width if not p.roms.bias.in_bram else 0,
                "ctrl": index_bits(p.depth) + 2 * index_bits(p.steps) + 4 * index_bits(L.rows),
                "kctr": p.lanes * (index_bits(L.taps) + index_bits(L.k)) if kmode else 0,
                **self._pipe_ff(plan, dsp, rq_w),
                "one": 1.0,
            },
        }

    def _pipe_ff(self, plan, dsp: bool, rq_w: int) -> dict[str, float]:
        """Registers of the pipelined core (``kofn_dense`` with ``PIPE = 1``): the gather's
        candidates and delayed selects, the weights' delay, the tree's levels, the control
        copies and the requantization registers.  A DSP absorbs the operand registers (A/B)."""
        p, L = plan, plan.layer
        pipe = self.df_pipeline(plan)
        sel, sb = pipe.select_bits, pipe.stage_bits
        cand = sum(pipe.candidates(g) for g in range(pipe.gather))
        n, tree = p.lanes, 0
        for _ in range(pipe.tree):
            n = (n + 1) // 2
            tree += n
        d1 = pipe.gather + 3 + pipe.tree
        sb0 = min(sel, sb)
        copies = pipe.candidates(0) if self.select_copies(plan) else 0  # one per first-stage candidate
        common = {
            "wsh": p.lanes * L.weight_fmt.width * (pipe.gather + 1),
            "op": 0 if dsp else p.lanes * (L.input_fmt.width + 1 + L.weight_fmt.width),
            "tree": tree * L.accumulator.width,
            "pipe": d1 * (3 + index_bits(L.rows)) + 2 * rq_w + L.output_fmt.width + 9 + 3 * index_bits(L.rows),
            # the result tags from stage 1 to the result: bank and the activation's end, and a conv
            # core's window tag (its frame's last window)
            "tags": (2 if self.tags_results == "pos" else 3) * (d1 + 4) if self.tags_results else 0,
        }
        if self.df_mem(L):  # each lane's registered memory address; no input vector, no selects
            return {"gather": p.lanes * (index_bits(self.lane_n(L)) + 1), "csel": 0, **common}
        return {
            # the input register (stage 1) and the candidates
            "gather": self.df_banks * L.n * L.input_fmt.width + p.lanes * L.input_fmt.width * cand,
            # each lane's select register and copies, and the selects delayed for later stages
            "csel": p.lanes * (sel + (copies * sb0 if copies > 1 else 0)
                               + sum(max(0, sel - (g + 1) * sb) for g in range(pipe.gather - 1))),
            **common,
        }

    def select_copies(self, plan) -> bool:
        """Whether the pipelined core gives each first-stage gather candidate its own copy of
        the select (``kofn_dense``'s ``SEL_COPIES``): when the first stage has more than one
        candidate, outside kernel mode, and every lane's first-stage select bits vary over
        the index ROM (a constant bit lets synthesis shrink the multiplexers, see
        :meth:`lane_inputs`, which a kept copy would prevent)."""
        if self.kernel_level(plan.layer) or self.df_mem(plan.layer):
            return False
        pipe = self.df_pipeline(plan)
        if pipe.candidates(0) < 2:
            return False
        mask = (1 << min(pipe.select_bits, pipe.stage_bits)) - 1
        idx = unpack_entries(plan.roms.index, plan.steps * plan.lanes)
        return not any(any(m & mask for m in constant_bits(idx[:, q :: plan.lanes])) for q in range(plan.lanes))

    def core_paths(self, plan, inst: str) -> list[StagePath]:
        """The pipelined core's register-to-register paths (``kofn_dense`` with ``PIPE = 1``):
        the ROM read (its address counter feeds every LUT of the index and weight ROMs), the
        select copies (one per first-stage candidate; kernel mode computes the select from the
        channel ROM word first), each gather stage (a 2**b:1 multiplexer; its select drives
        ``A_W`` multiplexers per candidate it serves: one in the first stage, behind its
        copy, every candidate of the lane in later stages), the
        adder tree and the accumulator (carry chains of the accumulator's width), the
        rounding (the requantization width) and the range test."""
        L = plan.layer
        pipe = self.df_pipeline(plan)
        a_w, acc_w, o_w = L.input_fmt.width, L.accumulator.width, L.output_fmt.width
        rq_w = max(acc_w, o_w + 1) + 1
        kmode = self.kernel_level(L)
        idx, w = plan.roms.index, plan.roms.weight
        lut_roms = [r for r in (idx, w) if not r.in_bram]
        out = [StagePath(inst, "address counter", 2, index_bits(plan.depth)),
               StagePath(inst, "ROM read", max((mux_levels(r.depth) for r in lut_roms), default=1), 0,
                         max(1, sum(r.word_bits * -(-r.depth // 16) for r in lut_roms)))]
        sel, sb = pipe.select_bits, pipe.stage_bits
        copies = self.select_copies(plan)
        if self.df_mem(L):
            # the index ROM's register addresses the lane's bank memory, read into its register
            depth, lutram = bank_ram(L.n // plan.lanes, a_w)
            out.append(StagePath(inst, "bank read", lutram_levels(depth) if lutram else 1, 0,
                                 a_w * -(-depth // 64) if lutram else 1))
        for g in range(0 if self.df_mem(L) else pipe.gather):
            nb = min(sb, sel - g * sb)
            out.append(StagePath(inst, f"gather {g + 1}", mux_levels(2 ** nb), 0,
                                 (1 if g == 0 and copies else pipe.candidates(g)) * a_w * 2 ** (nb - 1)))
        # the select register and copies load the index ROM's register, or in kernel mode
        # tap * N_CH + the kernel's channel from the channel ROM word (the step's tap and
        # kernel are registers; the kernel picks its channel field)
        if not self.df_mem(L):
            out.append(StagePath(inst, "select copy", 1 + (mux_levels(L.k) if kmode else 0),
                                 index_bits(L.n) if kmode else 0, 1 + (pipe.candidates(0) if copies else 0)))
        if pipe.tree:
            out.append(StagePath(inst, "adder tree", 1, acc_w))
        out += [StagePath(inst, "accumulate", 2, acc_w), StagePath(inst, "round", 1, rq_w),
                StagePath(inst, "range test", mux_levels(rq_w - o_w + 1))]
        return out

    def _bank_mux(self, plan) -> int:
        """LUTs per activation bit of the dataflow input's bank select: one shared 2:1 mux per
        input, or the bank as one more select bit in every lane's mux, whichever is smaller
        (synthesis picks the cheaper; a single lane over many inputs folds it in)."""
        per_lane = sum(mux_luts(2 * r) - mux_luts(r) for r in self.lane_inputs(plan))
        return min(plan.layer.n, per_lane)

    def memory(self, plan) -> dict[str, int]:
        L = plan.layer
        return {
            "rom": sum(r.bits for r in self.roms(plan)),
            "dense": L.rows * (L.n * L.weight_fmt.width + L.bias_fmt.width),
            "csr": csr_bits(L.rows, L.n, L.rows * self.entries_per_row(L), L.weight_fmt.width, L.bias_fmt.width),
            "line_buffer": 0,
            "window": 0,
        }
