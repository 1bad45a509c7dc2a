"""The formal harness of a dataflow build (``kofn prove``): what is proven, how deep, and the
Yosys scripts that turn the build's RTL into SMT-LIB models for ``yosys-smtbmc``.

Three models are made from ``hw_templates/formal/kofn_formal.sv.j2``:

* **safety**: free stalls on both ports, s_axis obeying AXI4-Stream (assumed).  The properties
  are the modules' own (``ifdef FORMAL`` blocks: no write into a bank that holds unread data, no
  release of an empty bank, a producer takes only a free output bank, a reserved producer's beat
  is always taken) and the harness's on m_axis (tdata, tlast and tvalid held until the
  handshake; tlast exactly on every frame's last beat; no output frame before its input),
  with the stages' :data:`LEMMAS`, which make them inductive.  Proven by PDR where it closes,
  else checked by BMC to :attr:`FormalPlan.safety_depth` cycles (at least twice the latency,
  with the reset).
* **live**: inputs always offered, output always ready.  Every frame's first input beat and last
  output beat must be accepted in exactly the cycles of :mod:`kofn.codegen.dataflow`'s schedule,
  for the frames that end within twice the latency (at least two): bounded liveness against
  the estimated latency and II, by BMC to :attr:`FormalPlan.live_depth`.
* **cover**: the safety model with each of :data:`COVERS` asserted never to happen, one AIGER
  model per cover, with inputs always offered (one of the safety environment's behaviours;
  tready stays free): the cycle of BMC's counterexample is the first that reaches it, so a
  proof that holds because nothing moves would show.

The datapath is abstracted: Yosys ``cutpoint`` turns the results entering the output buffer
into free values each cycle, so nothing upstream of them is observable and ``opt_clean`` drops
the MAC arrays, ROMs and activation buffers; the stream control and the output buffer remain.
The control of a dataflow build never looks at data (no value decides a handshake), so the cut
loses nothing the properties talk about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .build import BuildPlan
from .kinds import handler
from .render import df_output_stream, tdata_width
from .templating import environment, header

__all__ = ["FormalPlan", "formal_plan", "property_script", "RESET_CYCLES", "PROPERTY_TEXT", "COVERS", "describe"]

RESET_CYCLES = 4  # as the cocotb testbench holds aresetn low

#: The safety model's covers (the proof is not vacuous), by name: their conditions in the harness.
COVERS = {
    "cover_output_stalled": "m_axis_tvalid && !m_tready",
    "cover_input_refused": "s_tvalid && !s_axis_tready",
    "cover_two_frames_out": "out_last && outs",
}

#: The lemmas: assertions that hold in every reachable state and make the properties above
#: inductive, proven with them in one model (a PDR run proves every assertion of its model).
#: ``frame_order`` sits in ``kofn_dense``; the rest in the dataflow top, one per MAC stage
#: (``<name>_<layer>``), over two-bit views (one bit per bank) that the modules export under
#: ``ifdef FORMAL`` only: the stage's reservation, its conv loader's window, its core's words and
#: frame end in flight, its consumer's ``full`` and completing frame.  Without them PDR had to
#: find these facts itself, and did not on any CNN (a frame's end rides in a conv core's
#: pipeline many activations after the loader took its bank).
LEMMAS = {
    "frame_order": "a MAC core holds no result of a bank behind that bank's frame end",
    "frame_end_once": "a stage holds one frame end per bank at most, none while its loader works on that bank",
    "in_flight_reserved": "what a stage has in flight (window, core results, frame end) is for a bank it reserved",
    "in_flight_bank_empty": "the bank a stage's results in flight go to is neither full nor completing",
    "bank_full_reserved": "a full or completing bank stays reserved by its producer until released",
}

#: What each property says, by the label of its assertion (the last part of its hierarchical name).
PROPERTY_TEXT = {
    "no_empty_read": "a buffer bank is released only while it holds a frame (no stage reads an empty bank)",
    "no_overwrite": "every write lands in an empty bank (no write meets unread data)",
    "take_free_bank": "a stage starts a frame only into an output bank free of frame t-2's data",
    "no_lost_beat": "a reserved producer's result beat is always taken (no beat lost)",
    "axis_out_valid_held": "m_axis tvalid stays high until the handshake",
    "axis_out_data_stable": "m_axis tdata (each lane's lowest bit, of free values) and tlast stay stable while "
                            "tvalid && !tready",
    "frame_tlast": "tlast on exactly the last beat of every output frame",
    "start_on_full": "a stage starts a frame only from a full input bank (no stage reads an empty bank)",
    **{name: f"lemma: {text}" for name, text in LEMMAS.items()},
    "live_no_early_frame": "no frame's last output beat leaves before its scheduled cycle",
    "live_no_early_input": "no frame's first input beat is taken before its scheduled cycle",
    "live_frame": "the frame's last result leaves / first input beat is taken in the scheduled cycle",
}


def describe(name: str) -> str:
    """The text of property ``name`` (a hierarchical assertion name)."""
    base = name.rsplit(".", 1)[-1]
    for key, text in PROPERTY_TEXT.items():
        if base == key or base.startswith(key + "_") or (key == "live_frame" and base.startswith("live_frame")):
            return text
    return base


@dataclass(frozen=True)
class FormalPlan:
    """The harness files (``formal/...`` -> text), the top under proof, the depths, and the
    schedule the live model checks: ``(first input beat, last output beat)`` per frame, in
    cycles from the first input beat."""

    files: Mapping[str, str]
    top: str
    out_stream: str
    safety_depth: int
    live_depth: int
    latency: int
    ii: float
    schedule: tuple[tuple[int, int], ...]
    sources: tuple[str, ...] = ()
    #: per MAC stage (by layer name), the wires of its input buffer's `full` flags that its
    #: start reads, after flattening: cutting them frees the stage's start (property_script)
    stage_inputs: tuple[tuple[str, tuple[str, ...]], ...] = ()


#: Assertions about the counters themselves (their rest state): the abstract model, where the
#: counters are free, cannot hold them, so the ``local`` model checks them on the RTL as it is.
LOCAL_PROPERTIES = ("idle_at_zero",)


#: From a flat model to the AIG bit level (covers dropped: AIGER has none).
_AIG = ("chformal -cover -remove", "memory_map", "opt -fast -nodffe -nosdff", "techmap", "opt -fast -nodffe -nosdff",
        "abc -g AND -fast", "opt_clean", "setundef -anyseq")


def _model(top: str, sources: list[str], harness: str, cut: str, mode: str, free: tuple[str, ...] = ()) -> list[str]:
    """The Yosys lines that read the RTL and the harness, cut the datapath at wire ``cut`` and
    flatten: for mode ``abstract`` with the marked counters free and without the
    :data:`LOCAL_PROPERTIES`, for ``local`` with those alone; ``free``: more wires to cut after
    flattening (a stage's input flags, :func:`property_script`)."""
    local = " ".join(f"c:*.{n}" for n in LOCAL_PROPERTIES)
    return [
        f"read_verilog -formal -sv {' '.join(list(sources) + [harness])}",
        "prep -top kofn_formal",
        f"cutpoint {top}/w:{cut}",  # the datapath: free results into the output buffer
        *(["cutpoint */a:kofn_abstract"] if mode == "abstract" else []),
        "flatten",
        *[f"cutpoint kofn_formal/w:{w}" for w in free],
        *([f"chformal -remove t:$assert {local} %i"] if mode == "abstract" else []),
        *([f"chformal -remove t:$assert t:$assert {local} %i %d"] if mode == "local" else []),
        "opt_clean", "opt -fast", "async2sync", "dffunmap",
    ]


def _script(top: str, sources: list[str], harness: str, cut: str, mode: str) -> str:
    """Read the RTL and the harness, cut the datapath, write ``formal/<mode>.smt2`` (for
    ``yosys-smtbmc``) and ``formal/<mode>.aig`` with its map ``.aim`` (for ABC's ``bmc3``;
    covers dropped, as AIGER has none).  Mode ``cover`` (a harness whose covers are written as
    assertions that they are never reached) writes instead one AIGER model per cover,
    ``formal/<cover>.aig``, holding that assertion alone: bmc3's counterexample to it is the
    first cycle that reaches the cover.  Two more AIGER models of the safety harness:
    ``abstract`` cuts every counter the RTL marks ``(* kofn_abstract *)`` (free values each
    cycle: an over-approximation, so what holds there holds in the RTL) and drops the
    :data:`LOCAL_PROPERTIES`; ``local`` keeps those alone, on the RTL as it is."""
    head, aig = _model(top, sources, harness, cut, mode), _AIG
    if mode in ("abstract", "local"):
        return "\n".join([*head, *aig, f"write_aiger -I -B -zinit -no-startoffset formal/{mode}.aig"]) + "\n"
    if mode == "cover":
        tail = ["design -save cut"]
        for name in COVERS:
            tail += ["design -load cut", f"chformal -assert -remove t:$assert kofn_formal/{name} %d", "opt_clean",
                     f"write_aiger -I -B -zinit -no-startoffset formal/{name}.aig"]
        return "\n".join([*head, *aig, *tail]) + "\n"
    return "\n".join([*head,
        f"tee -q -o formal/{mode}_stat.txt stat -top kofn_formal",
        f"write_smt2 -wires formal/{mode}.smt2",
    ] + list(aig) + [
        f"write_aiger -I -B -zinit -no-startoffset -map formal/{mode}.aim formal/{mode}.aig",
    ]) + "\n"


def formal_plan(build: BuildPlan, sources: list[str], safety_depth: int | None = None) -> FormalPlan:
    """The harness of ``build`` (a dataflow build whose RTL files are ``sources``, paths
    relative to the build folder).  Returns a :class:`FormalPlan`; raises ``ValueError`` for a
    sequential build (its control is one FSM without buffers: not covered yet)."""
    if build.schedule != "dataflow":
        raise ValueError(f"kofn prove covers the dataflow schedule; this build is {build.schedule!r}")
    m, lat = build.model, build.latency
    latency = lat.total_cycles
    sched = list(zip(lat.first_in, lat.last_out))
    frames = max(2, sum(1 for _, lo in sched if lo <= 2 * latency))
    sched = sched[:frames]
    live_depth = RESET_CYCLES + sched[-1][1] + 2
    depth = safety_depth or RESET_CYCLES + 2 * latency + 2  # a --depth below twice the latency is the user's call
    cw = max(live_depth, depth).bit_length() + 2
    out_stream = df_output_stream(build.layers)
    env = environment()
    files = {}
    for mode in ("safety", "live", "cover"):
        files[f"formal/kofn_formal_{mode}.sv"] = env.get_template("formal/kofn_formal.sv.j2").render(
            header=header("//"), top=build.top, live=mode == "live", cover_model=mode == "cover", covers=COVERS,
            reset=RESET_CYCLES,
            in_tdata_w=build.stream_in * tdata_width(m.input_fmt),
            out_tdata_w=build.stream_out * tdata_width(m.output_fmt),
            in_beats=lat.input_cycles, out_beats=lat.output_cycles, cw=cw,
            iw=max(1, (lat.input_cycles - 1).bit_length()), ow=max(1, (lat.output_cycles - 1).bit_length()),
            out_lanes=build.stream_out, out_lane_w=tdata_width(m.output_fmt), frames=len(sched),
            out_stream=out_stream, schedule=list(enumerate(sched)))
        files[f"formal/{mode}.ys"] = _script(build.top, sources, f"formal/kofn_formal_{mode}.sv",
                                             f"{out_stream}_data", mode)
    for mode in ("abstract", "local"):
        files[f"formal/{mode}.ys"] = _script(build.top, sources, "formal/kofn_formal_safety.sv",
                                             f"{out_stream}_data", mode)
    stages = tuple((p.layer.name, (f"u_dut.full_{p.layer.name}",) + ((f"u_dut.u_{p.layer.name}.full",)
                                                                     if handler(p.layer).image else ()))
                   for p in build.layers if handler(p.layer).has_core)
    return FormalPlan(files, build.top, out_stream, depth, live_depth, latency, lat.ii_cycles, tuple(sched),
                      tuple(sources), stages)


def property_script(fp: "FormalPlan", names: list[str]) -> tuple[str, list[tuple[str, str, str]]]:
    """A Yosys script that writes one AIGER model per safety property in ``names`` and per
    model, for the properties the abstract model does not close together: the abstract model
    itself, the RTL as it is, then, for each MAC stage, the abstract model whose stage start is
    free of its input buffer's flags (its `full` wires cut: the stage may start whenever its own
    output reservation lets it, every behaviour it has and more).  Each is the RTL or an
    over-approximation of it, so a property PDR proves in any of them holds in the RTL.
    Returns the script and ``(property, model, aig path)`` in the order to try: every property
    in the first model, then those still open in the next, and so on (a time limit then cuts
    the hard properties' later tries, not the easy properties' first)."""
    cut, harness = f"{fp.out_stream}_data", "formal/kofn_formal_safety.sv"
    variants = [("abstract", "counters free", "abstract", ()), ("rtl", "rtl", "safety", ())] + [
        (f"free_{layer}", f"counters free, stage {layer}'s start free of its input buffer", "abstract", wires)
        for layer, wires in fp.stage_inputs]
    lines, order = [], []
    for tag, what, mode, wires in variants:
        lines += ["design -reset", *_model(fp.top, fp.sources, harness, cut, mode, wires), *_AIG, f"design -save {tag}"]
        for i, n in enumerate(names):
            path = f"formal/pp/{tag}_{i}.aig"
            lines += [f"design -load {tag}", f"chformal -remove t:$assert kofn_formal/{n} %d", "opt_clean",
                      f"write_aiger -I -B -zinit -no-startoffset {path}"]
            order.append((n, what, path))
    return "\n".join(lines) + "\n", order
