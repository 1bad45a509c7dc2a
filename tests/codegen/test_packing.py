"""Fixed-stride ROM packing: hand-checked words and round-trip properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kofn.codegen.packing import (
    mem_lines,
    pack_entries,
    pack_layer,
    steps_per_row,
    unpack_entries,
    unpack_layer,
)
from kofn.core.rules import index_bits
from kofn.core.testing import random_model


def test_directed_words():
    # 2 rows, k=3, 4-bit entries, P=2 lanes -> S=2 words per row, one padding entry per row.
    values = np.array([[1, 2, 3], [0xA, 0xB, 0xC]])
    rom = pack_entries(values, 4, 2)
    # word r*S+s holds entries s*P+p, lane 0 in the low nibble
    assert rom.words == (0x21, 0x03, 0xBA, 0x0C)
    assert (rom.depth, rom.word_bits, rom.bits) == (4, 8, 32)
    assert mem_lines(rom) == "21\n03\nba\n0c\n"


def test_directed_single_lane_and_wide_words():
    values = np.array([[5, 6]])
    assert pack_entries(values, 3, 1).words == (5, 6)
    assert pack_entries(values, 3, 2).words == (5 | (6 << 3),)
    wide = pack_entries(np.array([[1023] * 8]), 10, 8)  # 80-bit word
    assert wide.words == ((1 << 80) - 1,)
    assert mem_lines(wide) == "ffffffffffffffffffff\n"


def test_index_bits_and_steps():
    assert [index_bits(n) for n in (1, 2, 3, 4, 5, 64, 65, 784)] == [1, 1, 2, 2, 3, 6, 7, 10]
    assert [steps_per_row(k, 4) for k in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]


def test_layer_weights_are_twos_complement():
    m = random_model([6, 2], [3], seed=1)
    L = m.layers[0]
    roms = pack_layer(L, 3)
    w0 = roms.weight.words[0]
    for p in range(3):
        field = (w0 >> (8 * p)) & 0xFF
        assert field == (int(L.weights[0, p]) & 0xFF)


def test_lanes_out_of_range():
    L = random_model([6, 2], [3]).layers[0]
    with pytest.raises(ValueError, match="lanes=4 must be in 1..k=3"):
        pack_layer(L, 4)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_unpack_pack_round_trip(data):
    rows = data.draw(st.integers(1, 12))
    k = data.draw(st.integers(1, 20))
    bits = data.draw(st.integers(1, 16))
    lanes = data.draw(st.integers(1, 9))
    values = np.array(
        data.draw(st.lists(st.lists(st.integers(0, (1 << bits) - 1), min_size=k, max_size=k), min_size=rows, max_size=rows))
    )
    rom = pack_entries(values, bits, lanes)
    assert rom.depth == rows * steps_per_row(k, lanes)  # fixed stride, no row pointers
    np.testing.assert_array_equal(unpack_entries(rom, k), values)
    # the only padding is the lane split's: S*P - k zero entries per row
    padded = unpack_entries(rom, steps_per_row(k, lanes) * lanes)
    assert not padded[:, k:].any()


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 40), st.integers(1, 9), st.integers(0, 10**6), st.data())
def test_layer_round_trip(n, rows, seed, data):
    k = data.draw(st.integers(1, n))
    lanes = data.draw(st.integers(1, k))
    L = random_model([n, rows], [k], seed=seed).layers[0]
    idx, w, b = unpack_layer(pack_layer(L, lanes), k, L.weight_fmt.width, L.bias_fmt.width)
    np.testing.assert_array_equal(idx, L.indices)
    np.testing.assert_array_equal(w, L.weights)
    np.testing.assert_array_equal(b, L.bias)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(1, 5), st.integers(1, 8), st.integers(0, 10**6))
def test_bank_layer_round_trip_and_lane_p_reads_bank_p(banks, per_bank_n, per_bank_k, rows, seed):
    """Bank packing: unpack(pack(x)) == x, and every lane's entries are bank-local addresses
    of its own bank (lane p, step s: bank p's s-th kept input, ascending)."""
    n, k = banks * per_bank_n, banks * min(per_bank_k, per_bank_n)
    L = random_model([n, rows], [k], seed=seed, banks=[banks]).layers[0]
    roms = pack_layer(L, banks)
    assert roms.index.entry_bits == index_bits(n // banks)  # indices of a bank, not of all n
    idx, w, b = unpack_layer(roms, k, L.weight_fmt.width, L.bias_fmt.width, banks=banks)
    np.testing.assert_array_equal(idx, L.indices)
    np.testing.assert_array_equal(w, L.weights)
    np.testing.assert_array_equal(b, L.bias)
    local = unpack_entries(roms.index, k)  # [rows, S*P]: entry s*P + p is lane p's in step s
    for r in range(rows):
        for p in range(banks):
            inputs = local[r, p::banks] * banks + p
            np.testing.assert_array_equal(inputs, np.sort(L.indices[r][L.indices[r] % banks == p]))
    if banks > 1:  # the banks are the lanes
        with pytest.raises(ValueError, match=f"banks need lanes = {banks}"):
            pack_layer(L, banks - 1)


@pytest.mark.parametrize("gran,k", [("weight", 1), ("weight", 7), ("weight", 18), ("kernel", 1), ("kernel", 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_conv_layer_round_trip(gran, k, seed):
    from kofn.codegen.packing import entries_per_row
    from kofn.core.testing import random_cnn

    m = random_cnn((6, 5, 3 if gran == "kernel" else 2), [("conv", 4, 3, 1, 1, gran, k), ("dense", 2, 1)], seed=seed)
    L = m.layers[0]
    rng = np.random.default_rng(seed)
    for lanes in sorted({1, entries_per_row(L), int(rng.integers(1, entries_per_row(L) + 1))}):
        roms = pack_layer(L, lanes)
        idx, w, b = unpack_layer(roms, L.k, L.weight_fmt.width, L.bias_fmt.width, L.k_eff)
        np.testing.assert_array_equal(idx, L.indices)
        np.testing.assert_array_equal(w, L.weights)
        np.testing.assert_array_equal(b, L.bias)
        assert roms.steps == -(-L.k_eff // lanes)
        assert roms.weight.depth == L.rows * roms.steps


def test_kernel_level_stores_channel_indices_once_per_kernel():
    from kofn.core.testing import random_cnn

    m = random_cnn((8, 8, 20), [("conv", 50, 5, 1, 0, "kernel", 5), ("dense", 2, 1)], seed=0)
    L = m.layers[0]
    roms = pack_layer(L, 25)
    # one word per filter holding k = 5 channel indices of ceil(log2 20) = 5 bits: no per-weight index
    assert (roms.index.depth, roms.index.word_bits) == (50, 5 * 5)
    assert roms.index.bits == 50 * 5 * 5
    assert roms.weight.bits == 50 * 5 * 25 * L.weight_fmt.width  # k whole kernels, P = 25: no padding
    # the same kernels at weight level would need an index per weight
    assert pack_layer(L, 25).index.bits < 50 * 125 * 9
