"""The graph IR (issue 28): layers name their inputs; add and global average pooling.

The reference's ops are tested on their own (``test_fixed.py``, ``test_reference*.py``); here
the graph: that each layer reads the tensors it names (checked by composing the ops by hand),
that the model rejects every malformed graph with an error naming the defect, and that
``model.json`` round-trips graphs and still loads the chains of IR versions 1 and 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kofn.core import ir, reference
from kofn.core.fixed import FixedFormat, add_codes, avg_pool_codes
from kofn.core.ir import INPUT, AddLayer, GlobalAvgPoolLayer, Model
from kofn.core.testing import random_cnn, random_inputs, random_model, random_resnet

U8 = FixedFormat(8, 3, signed=False)
S8 = FixedFormat(8, 4)


def small_resnet(seed: int = 0) -> Model:
    return random_resnet((6, 6, 2), 4, [(4, 1), (6, 2)], 3, keep=0.5, seed=seed)


def test_a_chain_is_a_graph_whose_layers_read_the_one_before():
    m = random_model([10, 6, 3], [4, 2], seed=1)
    assert m.is_chain
    assert m.inputs == ((INPUT,), ("l0",))


def test_the_reference_reads_the_tensors_each_layer_names():
    """Block 0 is an identity shortcut, block 1 a projection: composing the ops by hand,
    each on the tensor the graph names, gives the same codes on every output."""
    m = small_resnet()
    L = {l.name: l for l in m.layers}
    x = random_inputs(m, 16, seed=2)
    stem = reference.conv2d(x, L["stem"])
    b0 = reference.conv2d(reference.conv2d(stem, L["b0_a"]), L["b0_b"])
    add0 = add_codes(b0, L["b0_add"].a_fmt, stem, L["b0_add"].b_fmt, L["b0_add"].output_fmt, relu=True)
    b1 = reference.conv2d(reference.conv2d(add0, L["b1_a"]), L["b1_b"])
    s1 = reference.conv2d(add0, L["b1_s"])
    add1 = add_codes(b1, L["b1_add"].a_fmt, s1, L["b1_add"].b_fmt, L["b1_add"].output_fmt, relu=True)
    h, w, c = L["gap"].in_shape
    pooled = avg_pool_codes(add1.reshape(-1, h, w, c), L["gap"].input_fmt, L["gap"].output_fmt)
    want = reference.dense(pooled, L["fc"])
    outs = reference.run_layers(m, x)
    np.testing.assert_array_equal(outs[-1], want)
    np.testing.assert_array_equal(outs[[l.name for l in m.layers].index("b1_add")], add1)
    assert m.inputs[[l.name for l in m.layers].index("b0_add")] == ("b0_b", "stem")


def test_the_add_takes_each_input_in_its_own_format():
    """Input 0 (the main branch) and input 1 (the shortcut) have different formats here, so
    reading them in the other order changes the codes: the graph's order is the one used."""
    m = small_resnet(seed=4)
    add = next(l for l in m.layers if l.name == "b1_add")
    assert add.a_fmt != add.b_fmt
    x = random_inputs(m, 32, seed=5)
    outs = dict(zip([l.name for l in m.layers], reference.run_layers(m, x)))
    good = add_codes(outs["b1_b"], add.a_fmt, outs["b1_s"], add.b_fmt, add.output_fmt, relu=True)
    swapped = add_codes(outs["b1_s"], add.a_fmt, outs["b1_b"], add.b_fmt, add.output_fmt, relu=True)
    np.testing.assert_array_equal(outs["b1_add"], good)
    assert np.any(good != swapped)


def test_global_average_pooling_makes_a_one_by_one_image():
    g = GlobalAvgPoolLayer("g", (3, 5, 4), U8, FixedFormat(10, 3, signed=False))
    assert g.out_shape == (1, 1, 4) and g.out_size == 4 and g.area == 15


def test_a_graph_round_trips_through_model_json(tmp_path):
    m = small_resnet(seed=7)
    ir.save(m, tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["ir_version"] == ir.IR_VERSION == 3
    assert [ld["inputs"] for ld in doc["layers"]] == [list(e) for e in m.inputs]
    back = ir.load(tmp_path)
    assert back.inputs == m.inputs and [l.kind for l in back.layers] == [l.kind for l in m.layers]
    x = random_inputs(m, 8, seed=8)
    np.testing.assert_array_equal(reference.run(back, x), reference.run(m, x))


@pytest.mark.parametrize("version", [1, 2])
def test_chains_of_older_ir_versions_still_load(tmp_path, version):
    m = random_model([12, 5, 3], [4, 2], seed=3) if version == 1 else \
        random_cnn((6, 6, 1), [("conv", 2, 3, 1, 1, "weight", 4), ("pool",), ("dense", 3, 5)], seed=3)
    ir.save(m, tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert all("inputs" not in ld for ld in doc["layers"])  # a chain is written as before,
    assert doc["ir_version"] == 2  # as version 2, which kofn before graphs reads
    doc["ir_version"] = version
    (tmp_path / "model.json").write_text(json.dumps(doc))
    back = ir.load(tmp_path)
    assert back.is_chain
    x = random_inputs(m, 8)
    np.testing.assert_array_equal(reference.run(back, x), reference.run(m, x))


def test_inputs_in_an_older_version_are_refused(tmp_path):
    ir.save(small_resnet(), tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    doc["ir_version"] = 2
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="IR version 2 has no 'inputs'"):
        ir.load(tmp_path)


def _rebuild(m: Model, **changes) -> Model:
    kw = dict(name=m.name, layers=m.layers, inputs=m.inputs)
    kw.update(changes)
    return Model(**kw)


def _edit(m: Model, name: str, srcs: tuple[str, ...]) -> tuple:
    return tuple(srcs if l.name == name else e for l, e in zip(m.layers, m.inputs))


@pytest.mark.parametrize("name, srcs, message", [
    ("b0_add", ("b0_b", "b1_a"), "which is not 'input' or an earlier layer"),  # a later layer
    ("b0_add", ("b0_b", "nope"), "which is not 'input' or an earlier layer"),
    ("b0_add", ("b0_b",), "reads 2 input"),
    ("b0_add", ("b0_a", "stem"), r"\(input 0\) reads .* but 'b0_a' writes"),  # the main branch's format
    ("b1_add", ("b1_b", "stem"), r"expects an image \(3, 3, 6\) but 'stem' is \(6, 6, 4\)"),
])
def test_malformed_graphs_are_refused_naming_the_defect(name, srcs, message):
    m = small_resnet()
    with pytest.raises(ValueError, match=message):
        _rebuild(m, inputs=_edit(m, name, srcs))


def test_a_dead_branch_is_refused():
    m = random_model([6, 4, 4, 2], [3, 2, 2], seed=2)
    with pytest.raises(ValueError, match=r"layer\(s\) 'l1' feed no other layer"):
        _rebuild(m, inputs=((INPUT,), ("l0",), ("l0",)))


def test_a_layer_may_not_take_the_input_s_name():
    m = random_model([4, 2], [2])
    bad = ir.DenseLayer("input", 4, m.layers[0].indices, m.layers[0].weights, m.layers[0].bias,
                        *(getattr(m.layers[0], f) for f in ("input_fmt", "weight_fmt", "bias_fmt", "output_fmt")),
                        relu=False)
    with pytest.raises(ValueError, match="no layer may be named 'input'"):
        Model("m", (bad,))


def test_an_image_add_needs_images_and_a_vector_add_vectors():
    m = random_model([6, 4, 4, 2], [3, 2, 2], seed=2)
    l0, l1, l2 = m.layers
    fmt = l1.output_fmt
    add = AddLayer("sum", (4,), l0.output_fmt, fmt, l1.input_fmt, relu=True)
    ok = Model("res", (l0, l1, add, l2), inputs=((INPUT,), ("l0",), ("l0", "l1"), ("sum",)))
    x = random_inputs(ok, 8, seed=1)
    o = reference.run_layers(ok, x)
    np.testing.assert_array_equal(o[2], add_codes(o[0], l0.output_fmt, o[1], fmt, l1.input_fmt, relu=True))
    img = AddLayer("sum", (2, 2, 1), l0.output_fmt, fmt, l1.input_fmt)
    with pytest.raises(ValueError, match="reads the vector of 'l0'"):
        Model("res", (l0, l1, img, l2), inputs=((INPUT,), ("l0",), ("l0", "l1"), ("sum",)))


def test_code_generation_and_the_torch_and_hls4ml_exporters_refuse_a_graph_by_name():
    """Until the hardware builds graphs, every path that lays out a chain says so (no silent
    misreading of an add as a pool).  ONNX export takes graphs (tests/test_onnx_graph.py)."""
    from kofn.app.export import ExportError, to_hls4ml, to_torch
    from kofn.codegen import plan_build

    m = small_resnet()
    with pytest.raises(ValueError, match=r"layer 'b0_add': a layer of kind 'add'; the hardware generator builds chains of "
                                         r"dense, conv, maxpool, gap layers only"):
        plan_build(m)
    with pytest.raises(ValueError, match=r"torch export of model 'random_resnet': it has a layer of kind 'add' \('b0_add'\)"):
        to_torch(m)
    with pytest.raises(ExportError, match=r"hls4ml export of model 'random_resnet': it has a layer of kind 'add'"):
        to_hls4ml(m, "/nonexistent")  # a user error (kofn export exits 2 with this line), not a crash


def test_kofn_flow_refuses_a_graph_config_before_training(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "g.toml"
    cfg.write_text('name = "g"\n[[layers]]\ntype = "conv"\nname = "stem"\nout_channels = 2\nkernel = 3\nk = 9\n'
                   'padding = "same"\n[[layers]]\ntype = "conv"\nout_channels = 2\nkernel = 3\nk = 4\npadding = "same"\n'
                   'relu = false\noutput = {width = 8, int_bits = 4}\n[[layers]]\ntype = "add"\ninputs = ["l1", "stem"]\n'
                   '[[layers]]\ntype = "gap"\n[[layers]]\nout_features = 10\nk = 2\nrelu = false\n')
    r = subprocess.run([sys.executable, "-m", "kofn", "flow", str(cfg), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "kofn: config: layers[2].type: 'add': kofn flow builds chains" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_chain_with_a_global_average_pool_is_version_3(tmp_path):
    m = random_cnn((4, 4, 2), [("conv", 3, 3, 1, 1, "weight", 4), ("gap",), ("dense", 3, 2)], seed=1)
    ir.save(m, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["ir_version"] == 3
    assert ir.load(tmp_path).layers[1].kind == "gap"


def test_the_last_layer_must_be_dense_not_an_add():
    m = random_model([6, 4, 4], [3, 2], seed=2)
    l0, l1 = m.layers
    add = AddLayer("sum", (4,), l0.output_fmt, l1.output_fmt, l1.output_fmt)
    with pytest.raises(ValueError, match="the last layer must be dense"):
        Model("res", (l0, l1, add), inputs=((INPUT,), ("l0",), ("l0", "l1")))
