"""The fuzzed flow (issue 16): random valid configs (kofn.app.fuzz: MLP and CNN, every
granularity, random widths, signedness, lanes hand-set or folded, both schedules, k = 1 and
k = n, wide beats, skewed stage rates) through the
whole flow: reference = RTL = HLS on every output code, estimated = measured cycles and II.

A sample of four seeds runs here (``pytest --fuzz-seed N`` moves it); a longer campaign:
``python -m kofn.app.fuzz --seeds 0-99 --out kofn-fuzz``."""

from __future__ import annotations

import pytest

from kofn.app.config import parse_config
from kofn.app.fuzz import check_flow, random_config, valid_config

pytestmark = pytest.mark.slow


def _features(cfg) -> set[str]:
    """What one parsed config exercises, in the names the coverage test wants."""
    seen = {cfg.hw.schedule, "signed input" if cfg.input.signed else "unsigned input"}
    if cfg.input.width > 8:
        seen.add("16-bit input lanes")
    if cfg.hw.stream_in > 1:
        seen.add("stream_in > 1")
        if cfg.layers[0].granularity == "bank":
            seen.add("stream_in > 1 into bank memories")
    if cfg.hw.stream_out > 1:
        seen.add("stream_out > 1")
    if cfg.hw.target_ii:
        seen.add("target_ii")
    if cfg.hw.max_dsp:
        seen.add("max_dsp")
    n = 64
    for i, L in enumerate(cfg.layers):
        seen.add(L.type)
        if L.weighted:
            seen.add(f"{L.type} {L.granularity}")
            seen.add(f"lanes {'auto' if L.lanes == 'auto' else 'set' if isinstance(L.lanes, int) else 'default'}")
            if L.k == 1:
                seen.add("k = 1")
            if L.granularity == "weight" and L.type == "dense" and L.k == 64:
                seen.add("k = n")
            if getattr(L, "bn", False):
                seen.add("bn")
        nxt = cfg.layers[i + 1] if i + 1 < len(cfg.layers) else None
        # skewed stage rates (issue 26, fuzz seed 44): a wide first layer into a tiny banked one
        if i == 0 and L.type == "dense" and L.row_k(n) >= 16 and L.out_features <= 6 and nxt is not None \
                and nxt.granularity == "bank":
            seen.add("wide layer into a tiny bank layer")
    return seen


def test_generator_covers_the_space():
    """The draws the flow test samples from reach every kind of layer, granularity and
    schedule, k = 1 and k = n, signed inputs, automatic folding both ways, wide beats on both
    streams, skewed stage rates; and most of them are valid as drawn."""
    seen: set[str] = set()
    redraws = 0
    for s in range(120):
        text, i = valid_config(s)
        redraws += i
        seen |= _features(parse_config(text))
    want = {"dataflow", "sequential", "signed input", "unsigned input", "dense", "conv", "maxpool", "dense weight",
            "dense block", "dense bank", "dense feature_map", "conv weight", "conv kernel", "conv bank",
            "conv feature_map", "lanes set", "lanes default", "lanes auto", "target_ii", "max_dsp", "k = 1", "k = n",
            "bn", "stream_in > 1", "stream_in > 1 into bank memories", "stream_out > 1", "16-bit input lanes",
            "wide layer into a tiny bank layer"}
    assert want <= seen, want - seen
    assert redraws < 60, f"{redraws} redraws for 120 configs: the generator drifted from the rules"


def test_random_config_is_a_function_of_its_seed():
    assert random_config(7) == random_config(7) and random_config(7) != random_config(8)


@pytest.mark.parametrize("offset", range(4))
def test_fuzzed_flow_is_bit_exact_with_exact_cycles(offset, fuzz_seed, tmp_path):
    c = check_flow(fuzz_seed + offset, tmp_path / "b")
    assert c.vectors > 0 and c.hls_mismatches == 0 and c.rtl_mismatches == 0 and c.tlast_errors == 0, c
    assert c.cycles[0] == c.cycles[1] and c.ii[0] == c.ii[1], c
