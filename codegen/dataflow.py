"""The dataflow schedule (``hw.schedule = "dataflow"``): every MAC layer is a stage that works
on inference t+1 while the next stage works on inference t, with ping-pong buffers between
stages (``hw_templates/verilog/kofn_vecbuf.sv``, the frame buffer of ``kofn_conv_df.sv``).

Frame t of every buffer lives in bank t mod 2.  The protocol, which :func:`simulate` replays
cycle for cycle (the RTL's registers decide on the cycle after an event):

* **source** (s_axis): beat j of frame t is accepted one cycle after beat j-1 if the
  buffer's write bank is empty; pooling between s_axis and the buffer forwards ``tready``, and
  a frame's trailing beats that no pooled beat completes belong to the next frame's bank.
* **dense** stage (:class:`DenseStage`): starts frame t in cycle ``s`` when its input bank is
  full, the next buffer's bank t mod 2 is empty (reserved, so results never wait) and its core
  can issue without a gap (``s >= s_prev + D``); it issues ``D = rows * S`` words in cycles
  ``s+1 .. s+D``, result r leaves in cycle ``s + (r+1)*S + 3 + X`` and the input bank is free
  again from ``s + D + 2``.  ``X`` is the pipelined core's extra depth
  (:attr:`kofn.core.rules.CorePipeline.extra`: gather stages + tree levels + 5).  When the
  buffer's producer is a MAC stage, the core releases the bank ``E`` cycles early
  (:func:`kofn.codegen.timing.df_rel_early`), free from ``s + D + 2 - E``.
* **conv** stage (:class:`ConvStage`): starts a frame when its input bank is full, the next
  bank empty and its loader idle; per output pixel the loader waits for the next-window
  register, reads K columns and the window is ready K+2 cycles after the read began; the core
  starts on a ready window (``s_i >= s_{i-1} + D``), so a pixel costs ``max(D, K + 3)``.
  Results leave as for dense (``+ 3 + X``); the input bank is free one cycle after the frame's last read.
  The next buffer's bank is full two cycles after the frame's last result leaves the core
  (its end strobe, which travels with the result's tags), even where a pool behind the core
  drops that result (a trailing odd row or column).
* **pooling** (:class:`PoolFilter`) passes the beat completing a 2x2 window in the same cycle.
* **sink** (m_axis): frame t's beats leave in consecutive cycles from the cycle its bank is
  full (and the previous frame's beats are out); its bank is free after the last beat.

A buffer's bank counts as full two cycles after the beat that completed it: both kinds
(``kofn_vecbuf``, ``kofn_conv_df``'s frame buffer) register their writes once.  The steady
initiation interval is the slowest stage's period (plus the buffer hand-offs when two
neighbours are both slow); :func:`simulate` returns every inference's first input beat and
last output beat for back-to-back inferences, which the cocotb testbench measures exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..core.rules import steady_ii

__all__ = ["DenseStage", "ConvStage", "StreamFilter", "PoolFilter", "Schedule", "simulate", "steady_ii", "DF_VECTORS"]

DF_VECTORS = 12  # back-to-back inferences simulated for the steady-state II


class StreamFilter:
    """A stage on an HWC stream that passes some beats of a frame on in their own cycle (a
    pool): :meth:`passes_beat` says which, by index in the frame."""

    def __init__(self, in_shape):
        self.h, self.w, self.c = in_shape

    @property
    def frame(self) -> int:
        """Beats per input frame."""
        return self.h * self.w * self.c

    def passes_beat(self, i: int) -> bool:
        raise NotImplementedError

    def passes(self, n_beats: int) -> list[int]:
        return [i for i in range(n_beats) if self.passes_beat(i)]


class PoolFilter(StreamFilter):
    """2x2/2 max pooling: the beat at the bottom-right of each window passes (trailing odd
    rows and columns never do)."""

    def passes_beat(self, i: int) -> bool:
        y, x = divmod(i // self.c, self.w)
        return bool(y < self.h // 2 * 2 and x < self.w // 2 * 2 and x % 2 and y % 2)


def _through(filters, n_beats: int) -> list[int]:
    """Indices of a producer's beats that reach the next buffer through ``filters``."""
    idx = list(range(n_beats))
    for f in filters:
        idx = [idx[i] for i in f.passes(len(idx))]
    return idx


@dataclass
class _Link:
    """A ping-pong buffer: the cycle from which frame t's bank is full, and free again.
    ``lag``: cycles from accepting a frame's last beat to its bank counting as full (2: both
    buffer kinds register their writes once)."""

    full: list
    free: list
    lag: int = 1

    def free_for(self, t: int) -> int:
        """First cycle bank t mod 2 may take frame t (frame t-2 released)."""
        return self.free[t - 2] if t >= 2 else 0


class DenseStage:
    """A dense layer's core between two vector buffers."""

    name = ""

    def __init__(self, name: str, rows: int, steps: int, extra: int = 0, early: int = 0):
        self.name, self.rows, self.steps = name, rows, steps
        self.depth = rows * steps
        self.early = early  # the input bank is released this many cycles before the last gather
        self.lat = 3 + extra  # issue of a row's last word to its result

    @property
    def period(self) -> int:
        return self.depth

    def frame(self, t, inp: _Link, out: _Link, filters, st: dict):
        s = max(inp.full[t], out.free_for(t), st.get("prev", -self.depth) + self.depth)
        st["prev"] = s
        inp.free.append(s + self.depth + 2 - self.early)
        beats = [s + (r + 1) * self.steps + self.lat for r in range(self.rows)]
        passed = _through(filters, len(beats))
        out.full.append(beats[passed[-1]] + out.lag)
        return s


class ConvStage:
    """A convolution's frame buffer, window loader and core."""

    def __init__(self, name: str, out_shape, kernel: int, steps: int, extra: int = 0):
        self.name = name
        self.oh, self.ow, self.c_out = out_shape
        self.k, self.steps = kernel, steps
        self.lat = 3 + extra  # issue of a row's last word to its result
        self.depth = self.c_out * steps  # core issue cycles per pixel

    @property
    def period(self) -> int:
        return self.oh * self.ow * max(self.depth, self.k + 3)

    def frame(self, t, inp: _Link, out: _Link, filters, st: dict):
        # st["core"]: start cycle of the core's last pixel; st["idle"]: the loader is free from
        s = max(inp.full[t], out.free_for(t), st.get("idle", 0))
        enter = s + 1  # the loader waits for the next-window register from here
        beats = []
        core = st.get("core")
        last_read = enter
        for _ in range(self.oh * self.ow):
            dw = enter if core is None else max(enter, core + 1)
            last_read = dw + self.k
            ready = dw + self.k + 2
            core = ready if core is None else max(ready, core + self.depth)
            beats += [core + (r + 1) * self.steps + self.lat for r in range(self.c_out)]
            enter = last_read + 1
        st["core"], st["idle"] = core, last_read + 1
        inp.free.append(last_read + 1)
        # the frame is complete with its last window's last result (the core's end strobe),
        # kept by the pools behind or not
        out.full.append(beats[-1] + out.lag)
        return s


@dataclass(frozen=True)
class Schedule:
    """Back-to-back inferences without stalls: per inference, the cycle of its first input
    beat and of its last output beat; ``latency`` is the first (isolated) inference's,
    ``ii`` the steady interval between outputs."""

    first_in: tuple[int, ...]
    last_out: tuple[int, ...]
    stage_periods: tuple[tuple[str, int], ...]

    @property
    def latency(self) -> int:
        return self.last_out[0] - self.first_in[0]

    @property
    def ii(self) -> int | float:
        return steady_ii(self.last_out)


def simulate(in_beats: int, in_filters: Sequence, stages: Sequence, stage_filters: Sequence[Sequence],
             out_beats: int, vectors: int = DF_VECTORS) -> Schedule:
    """Replay the dataflow protocol for ``vectors`` back-to-back inferences (module doc).

    ``in_filters``: the pools between s_axis and the first buffer; ``stage_filters[i]``: those
    after stage ``i``."""
    states = [{} for _ in stages]  # each stage's state across frames
    # a dense stage reads a vector buffer, a convolution its frame buffer; m_axis reads a vector buffer
    links = [_Link([], [], 2) for _ in stages] + [_Link([], [], 2)]  # every buffer registers its writes
    passed = _through(in_filters, in_beats)
    last_pass = passed[-1]
    first_in, last_out = [], []
    beat = -1
    sink_prev = None
    for t in range(vectors):
        # source: beats after the frame's last passing one already belong to bank t+1
        for j in range(in_beats):
            bank_frame = t if j <= last_pass else t + 1
            if bank_frame == t + 1 and bank_frame >= 2 and len(links[0].free) < bank_frame - 1:
                raise AssertionError("source ran ahead of the model")  # cannot happen: stage order
            beat = max(beat + 1, links[0].free_for(bank_frame))
            if j == 0:
                first_in.append(beat)
            if j == last_pass:
                links[0].full.append(beat + links[0].lag)
        for i, st in enumerate(stages):
            st.frame(t, links[i], links[i + 1], stage_filters[i], states[i])
        s = links[-1].full[t] if sink_prev is None else max(links[-1].full[t], sink_prev + out_beats)
        sink_prev = s
        links[-1].free.append(s + out_beats)
        last_out.append(s + out_beats - 1)
    periods = (("s_axis", in_beats),) + tuple((st.name, st.period) for st in stages) + (("m_axis", out_beats),)
    return Schedule(tuple(first_in), tuple(last_out), periods)
