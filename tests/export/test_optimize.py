"""The export-time graph rewrites (export.optimize): each pass on small graphs that have its pattern.

Every rewrite must leave onnxruntime's outputs equal to the original graph's (within float rounding)
and change the graph the way it says; patterns it must not touch are left exactly as they were.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.optimize import PASSES, describe, op_counts, optimize
from export.validation import cpu_session

RNG = np.random.default_rng(0)


def weight(*shape, scale=0.2):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def model(nodes, inputs, outputs, initializers, opset=18):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return m


def run(m, feeds):
    return cpu_session(m.SerializeToString()).run(None, feeds)


def check_same(before, after, feeds, atol=1e-5):
    for a, b in zip(run(before, feeds), run(after, feeds)):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=atol, rtol=0)


def image(b, c, h, w):
    return RNG.standard_normal((b, c, h, w)).astype(np.float32)


# --------------------------------------------------------------------------- fold_constants


def test_fold_constants_computes_weight_arithmetic_once():
    """tf2onnx's BatchNorm as Sqrt/Div/Mul of initializers becomes one constant."""
    c = 4
    var, gamma = np.abs(weight(c)) + 0.5, weight(c)
    nodes = [
        helper.make_node("Constant", [], ["eps"], value=numpy_helper.from_array(np.array(1e-3, np.float32))),
        helper.make_node("Add", ["var", "eps"], ["v"]),
        helper.make_node("Sqrt", ["v"], ["s"]),
        helper.make_node("Div", ["gamma", "s"], ["scale"]),
        helper.make_node("Mul", ["x", "scale"], ["y"]),
    ]
    m = model(nodes, [("x", [None, c])], ["y"], {"var": var, "gamma": gamma})
    out, reports = optimize(m, ["fold_constants"])
    assert op_counts(out) == {"Mul": 1}
    assert reports[0].rewrites == 4
    check_same(m, out, {"x": RNG.standard_normal((3, c)).astype(np.float32)})


def test_fold_constants_leaves_random_ops_and_graph_outputs():
    nodes = [helper.make_node("RandomNormal", [], ["noise"], shape=[2, 3]),
             helper.make_node("Add", ["x", "noise"], ["y"]),
             helper.make_node("Neg", ["k"], ["k_out"])]
    m = model(nodes, [("x", [2, 3])], ["y", "k_out"], {"k": weight(2, 3)})
    out, reports = optimize(m, ["fold_constants"])
    assert reports[0].rewrites == 0
    assert op_counts(out) == op_counts(m)


# --------------------------------------------------------------------------- fold_crop


@pytest.mark.parametrize("size,start,end", [(5, 1, 11), (5, 1, 10), (4, 0, 7), (6, 2, 100)])
def test_fold_crop_turns_spatial_slice_into_pads(size, start, end):
    """A full-size ConvTranspose and a Slice of its spatial axes (TensorFlow's 'same' padding) ->
    one ConvTranspose with pads; ends past the edge clamp as Slice does."""
    w = weight(6, 5, 3, 3)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["full"], strides=[2, 2], kernel_shape=[3, 3]),
             helper.make_node("Slice", ["full", "starts", "ends", "axes"], ["y"]),
             helper.make_node("Relu", ["y"], ["out"])]
    inits = {"w": w, "starts": np.array([0, start, start, 0], np.int64),
             "ends": np.array([2**63 - 1, end, end, 2**63 - 1], np.int64), "axes": np.array([0, 2, 3, 1], np.int64)}
    m = model(nodes, [("x", ["b", 6, size, size])], ["out"], inits)
    out, reports = optimize(m, ["fold_crop"])
    assert reports[0].rewrites == 1 and "Slice" not in op_counts(out)
    check_same(m, out, {"x": image(2, 6, size, size)})


def test_fold_crop_leaves_channel_crops_and_shared_outputs():
    w = weight(6, 5, 3, 3)
    channel_crop = [helper.make_node("ConvTranspose", ["x", "w"], ["full"], strides=[2, 2], kernel_shape=[3, 3]),
                    helper.make_node("Slice", ["full", "starts", "ends", "axes"], ["y"])]
    inits = {"w": w, "starts": np.array([1], np.int64), "ends": np.array([4], np.int64), "axes": np.array([1], np.int64)}
    m = model(channel_crop, [("x", ["b", 6, 5, 5])], ["y"], inits)
    assert optimize(m, ["fold_crop"])[1][0].rewrites == 0
    shared = channel_crop[:1] + [helper.make_node("Slice", ["full", "starts", "ends", "axes"], ["y"]),
                                 helper.make_node("Relu", ["full"], ["z"])]
    inits.update(axes=np.array([2], np.int64))
    m = model(shared, [("x", ["b", 6, 5, 5])], ["y", "z"], inits)
    assert optimize(m, ["fold_crop"])[1][0].rewrites == 0


# --------------------------------------------------------------------------- fold_affine


@pytest.mark.parametrize("layer", ["Conv", "ConvTranspose"])
def test_fold_affine_folds_batchnorm_as_sub_mul_add(layer):
    """tf2onnx's BatchNorm (Sub mean, Mul scale, Add beta, per channel) disappears into the layer."""
    c_in, c_out = 4, 6
    w = weight(c_out, c_in, 3, 3) if layer == "Conv" else weight(c_in, c_out, 3, 3)
    bias = weight(c_out)
    per_channel = lambda: weight(1, c_out, 1, 1)  # noqa: E731
    nodes = [helper.make_node(layer, ["x", "w", "b"], ["h"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
             helper.make_node("Sub", ["h", "mean"], ["h1"]),
             helper.make_node("Mul", ["scale", "h1"], ["h2"]),
             helper.make_node("Add", ["h2", "beta"], ["h3"]),
             helper.make_node("LeakyRelu", ["h3"], ["y"], alpha=0.01)]
    m = model(nodes, [("x", ["b", c_in, 7, 7])], ["y"],
              {"w": w, "b": bias, "mean": per_channel(), "scale": per_channel(), "beta": per_channel()})
    out, reports = optimize(m, ["fold_affine"])
    assert reports[0].rewrites == 3
    assert op_counts(out) == {layer: 1, "LeakyRelu": 1}
    check_same(m, out, {"x": image(2, c_in, 7, 7)})


def test_fold_affine_folds_a_batchnormalization_node_and_matmul_bias():
    c = 5
    stats = {"gamma": weight(c), "beta": weight(c), "mean": weight(c), "var": np.abs(weight(c)) + 0.3}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Add", ["h", "bias"], ["h1"]),
             helper.make_node("BatchNormalization", ["h1", "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-3)]
    m = model(nodes, [("x", ["b", 7])], ["y"], {"w": weight(7, c), "bias": weight(c), **stats})
    out, reports = optimize(m, ["fold_affine"])
    assert op_counts(out) == {"Gemm": 1}
    check_same(m, out, {"x": RNG.standard_normal((3, 7)).astype(np.float32)})


def test_fold_affine_leaves_what_is_not_per_channel():
    """A constant varying along a spatial axis, ``c - x`` and a layer output read twice stay as they are."""
    w = weight(6, 4, 3, 3)
    cases = [
        ([helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Mul", ["h", "k"], ["y"])],
         {"k": weight(1, 1, 7, 1)}, ["y"]),
        ([helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Sub", ["k", "h"], ["y"])],
         {"k": weight(1, 6, 1, 1)}, ["y"]),
        ([helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Mul", ["h", "k"], ["y"]),
          helper.make_node("Relu", ["h"], ["z"])], {"k": weight(1, 6, 1, 1)}, ["y", "z"]),
    ]
    for nodes, extra, outputs in cases:
        m = model(nodes, [("x", ["b", 4, 7, 7])], outputs, {"w": w, **extra})
        out, reports = optimize(m, ["fold_affine"])
        assert reports[0].rewrites == 0, nodes[1].op_type
        check_same(m, out, {"x": image(2, 4, 7, 7)})


# --------------------------------------------------------------------------- polyphase_tail


@pytest.mark.parametrize("kernel,pads,out_pad,conv_kernel", [
    (3, 1, 1, 3),   # the 150x150 decoder's tail: 3x3 stride 2 "same", then a 3x3 conv
    (4, 1, 0, 3),   # a 4x4 stride-2 upsampling
    (3, 1, 1, 5),   # a wider following convolution
    (3, 1, 1, 1),   # a pointwise one: no shifted blocks, no crop
])
def test_polyphase_tail_matches_conv_transpose_then_conv(kernel, pads, out_pad, conv_kernel):
    """The phase form, then (col2im_interleave) its DepthToSpace and crop as one Col2Im."""
    c_in, c_mid, c_out, size = 5, 4, 3, 6
    nodes = [helper.make_node("ConvTranspose", ["x", "w1", "b1"], ["up"], strides=[2, 2], pads=[pads] * 4,
                              output_padding=[out_pad] * 2, kernel_shape=[kernel, kernel]),
             helper.make_node("LeakyRelu", ["up"], ["act"], alpha=0.2),
             helper.make_node("Conv", ["act", "w2", "b2"], ["conv"], pads=[conv_kernel // 2] * 4),
             helper.make_node("Sigmoid", ["conv"], ["image"])]
    m = model(nodes, [("x", ["b", c_in, size, size])], ["image"],
              {"w1": weight(c_in, c_mid, kernel, kernel), "b1": weight(c_mid),
               "w2": weight(c_out, c_mid, conv_kernel, conv_kernel), "b2": weight(c_out)})
    out, reports = optimize(m, ["polyphase_tail"])
    assert reports[0].rewrites == 1
    counts = op_counts(out)
    assert counts["Conv"] == 2 and counts["DepthToSpace"] == 1 and "ConvTranspose" not in counts
    check_same(m, out, {"x": image(3, c_in, size, size)})
    cpu, reports = optimize(out, ["col2im_interleave"])
    assert reports[0].rewrites == 1
    counts = op_counts(cpu)
    assert counts["Col2Im"] == 1 and "DepthToSpace" not in counts and "Slice" not in counts
    check_same(m, cpu, {"x": image(3, c_in, size, size)})


def test_polyphase_tail_needs_an_exact_upsampling():
    """Output 2n - 1 (no output padding): the phases are not all n long, so nothing is rewritten."""
    nodes = [helper.make_node("ConvTranspose", ["x", "w1"], ["up"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["up", "w2"], ["y"], pads=[1, 1, 1, 1])]
    m = model(nodes, [("x", ["b", 4, 5, 5])], ["y"], {"w1": weight(4, 4, 3, 3), "w2": weight(3, 4, 3, 3)})
    assert optimize(m, ["polyphase_tail"])[1][0].rewrites == 0


# --------------------------------------------------------------------------- unit_stride_transpose


def test_unit_stride_transpose_is_a_flipped_conv():
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], pads=[2, 1, 2, 1], kernel_shape=[5, 3])]
    m = model(nodes, [("x", ["b", 6, 7, 8])], ["y"], {"w": weight(6, 4, 5, 3), "b": weight(4)})
    out, reports = optimize(m, ["unit_stride_transpose"])
    assert op_counts(out) == {"Conv": 1}
    check_same(m, out, {"x": image(2, 6, 7, 8)})


# --------------------------------------------------------------------------- depth_fold_transpose


def video(b, c, d, h, w):
    return RNG.standard_normal((b, c, d, h, w)).astype(np.float32)


@pytest.mark.parametrize("kernel,strides,pads,out_pad,bias", [
    ((4, 4, 4), (2, 2, 2), (1, 1, 1, 1, 1, 1), (0, 0, 0), True),   # the DCGAN-style doubling
    ((3, 4, 4), (3, 2, 2), (0, 1, 1, 0, 1, 1), (0, 0, 0), False),  # K = 1: no depth window
    ((6, 3, 3), (2, 1, 1), (3, 1, 1, 1, 1, 1), (1, 0, 0), True),   # K = 3, uneven depth pads, output padding
])
def test_depth_fold_transpose_matches_the_3d_transposed_convolution(kernel, strides, pads, out_pad, bias):
    c_in, c_out = 5, 4
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [helper.make_node("ConvTranspose", inputs, ["h"], kernel_shape=list(kernel), strides=list(strides),
                              pads=list(pads), output_padding=list(out_pad)),
             helper.make_node("Relu", ["h"], ["y"])]
    inits = {"w": weight(c_in, c_out, *kernel), **({"b": weight(c_out)} if bias else {})}
    m = model(nodes, [("x", ["b", c_in, 8, 5, 6])], ["y"], inits)
    out, reports = optimize(m, ["depth_fold_transpose"])
    counts = op_counts(out)
    assert reports[0].rewrites == 1 and counts["ConvTranspose"] == 1 and counts["Transpose"] == 2
    folded = next(n for n in out.graph.node if n.op_type == "ConvTranspose")
    assert len(next(a for a in folded.attribute if a.name == "kernel_shape").ints) == 2
    check_same(m, out, {"x": video(2, c_in, 8, 5, 6)})


def test_depth_fold_transpose_leaves_unit_depth_stride_uneven_kernels_and_shallow_inputs():
    """Depth stride 1 (measured slower folded), a depth kernel that is no multiple of the stride, and
    an input 2 deep (3 depth blocks computed for 2: over the waste bound)."""
    for kernel, strides, depth in (((3, 4, 4), (1, 2, 2), 4), ((5, 4, 4), (2, 2, 2), 4), ((4, 4, 4), (2, 2, 2), 2)):
        nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=list(kernel), strides=list(strides))]
        m = model(nodes, [("x", ["b", 3, depth, 4, 4])], ["y"], {"w": weight(3, 2, *kernel)})
        out, reports = optimize(m, ["depth_fold_transpose"])
        assert reports[0].rewrites == 0 and op_counts(out) == {"ConvTranspose": 1}


# --------------------------------------------------------------------------- block_transpose


@pytest.mark.parametrize("kernel,strides,pads,out_pad,size", [
    ((4, 4), (2, 2), (1, 1, 1, 1), (0, 0), (8, 8)),      # the usual doubling: Col2Im pads crop 1 pixel
    ((6, 4), (3, 2), (0, 1, 2, 1), (1, 0), (9, 10)),     # unequal strides, uneven pads, output padding
    ((2, 2), (2, 2), (0, 0, 0, 0), (0, 0), (5, 7)),      # K = 1: a 1 x 1 Conv, no border blocks
    ((5, 5), (2, 2), (2, 2, 2, 2), (1, 1), (7, 7)),      # no multiple of the stride: a 3 x 3 kernel with zero taps
])
def test_block_transpose_matches_the_transposed_convolution(kernel, strides, pads, out_pad, size):
    c_in, c_out = 6, 5
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["h"], kernel_shape=list(kernel), strides=list(strides),
                              pads=list(pads), output_padding=list(out_pad)),
             helper.make_node("Tanh", ["h"], ["y"])]
    m = model(nodes, [("x", ["b", c_in, *size])], ["y"], {"w": weight(c_in, c_out, *kernel), "b": weight(c_out)})
    out, reports = optimize(m, ["block_transpose"])
    assert reports[0].rewrites == 1
    assert op_counts(out) == {"Conv": 1, "Reshape": 1, "Col2Im": 1, "Tanh": 1}
    check_same(m, out, {"x": image(3, c_in, *size)})


def test_block_transpose_leaves_wasteful_small_maps_uneven_kernels_and_old_opsets():
    """A 4 x 4 map (25 blocks computed for 16: over the waste bound), a 3 x 3 stride-2 kernel (its
    blocks are 4/3 of the work per axis), an opset-17 graph (no Col2Im) and a 1-channel output
    (4 Conv channels: under MIN_CHANNELS) stay ConvTranspose."""
    from export.optimize.block_transpose import MAX_WASTE

    for kernel, size, opset, c_out in (((4, 4), (4, 4), 18, 2), ((3, 3), (8, 8), 18, 2), ((4, 4), (8, 8), 17, 2),
                                       ((4, 4), (8, 8), 18, 1)):
        nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=list(kernel), strides=[2, 2],
                                  pads=[1, 1, 1, 1])]
        m = model(nodes, [("x", ["b", 3, *size])], ["y"], {"w": weight(3, c_out, *kernel)}, opset=opset)
        out, reports = optimize(m, ["block_transpose"])
        assert reports[0].rewrites == 0 and op_counts(out) == {"ConvTranspose": 1}, (kernel, size, opset, c_out)
    assert (4 + 1) ** 2 > MAX_WASTE * 4 ** 2  # the bound the first case relies on


def test_depth_fold_then_block_transpose_gives_convs_and_col2im_for_video():
    """The composed rewrite of a large-enough 3-D layer: no ConvTranspose left, outputs equal."""
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[4, 4, 4], strides=[2, 2, 2],
                              pads=[1] * 6)]
    m = model(nodes, [("x", ["b", 4, 3, 8, 8])], ["y"], {"w": weight(4, 3, 4, 4, 4)})
    out, reports = optimize(m, ["depth_fold_transpose", "block_transpose", "cancel_transposes"])
    counts = op_counts(out)
    assert "ConvTranspose" not in counts and counts["Col2Im"] == 1 and counts["Conv"] == 1
    check_same(m, out, {"x": video(2, 4, 3, 8, 8)})


# --------------------------------------------------------------------------- col2im_interleave


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_col2im_interleave_takes_depth_to_space_and_its_crop(mode):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["phases"], pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["phases"], ["wide"], blocksize=2, mode=mode),
             helper.make_node("Slice", ["wide", "starts", "ends", "axes"], ["y"])]
    inits = {"w": weight(12, 5, 3, 3), "b": weight(12), "starts": np.array([1, 0], np.int64),
             "ends": np.array([-1, 2**62], np.int64), "axes": np.array([2, 3], np.int64)}
    m = model(nodes, [("x", ["b", 5, 6, 7])], ["y"], inits)
    out, reports = optimize(m, ["col2im_interleave"])
    assert reports[0].rewrites == 1
    assert op_counts(out) == {"Conv": 1, "Reshape": 1, "Col2Im": 1}
    check_same(m, out, {"x": image(2, 5, 6, 7)})


def test_col2im_interleave_leaves_shared_outputs_strided_crops_and_old_opsets():
    strided = [helper.make_node("Conv", ["x", "w"], ["p"]), helper.make_node("DepthToSpace", ["p"], ["d"], blocksize=2),
               helper.make_node("Slice", ["d", "starts", "ends", "axes", "steps"], ["y"])]
    inits = {"w": weight(8, 3, 1, 1), "starts": np.array([0], np.int64), "ends": np.array([4], np.int64),
             "axes": np.array([2], np.int64), "steps": np.array([2], np.int64)}
    m = model(strided, [("x", ["b", 3, 4, 4])], ["y"], inits)
    out, _ = optimize(m, ["col2im_interleave"])
    assert "Slice" in op_counts(out) and "Col2Im" in op_counts(out)  # the D2S goes, the strided crop stays
    check_same(m, out, {"x": image(2, 3, 4, 4)})
    shared = [helper.make_node("Conv", ["x", "w"], ["p"]), helper.make_node("DepthToSpace", ["p"], ["y"], blocksize=2)]
    for outputs, opset in ((["y", "p"], 18), (["y"], 17)):
        m = model(shared, [("x", ["b", 3, 4, 4])], outputs, {"w": weight(8, 3, 1, 1)}, opset=opset)
        assert optimize(m, ["col2im_interleave"])[1][0].rewrites == 0


def test_optimized_for_names_what_the_rewrites_tuned_the_graph_for():
    from export.optimize import PassReport, optimized_for

    def reports(*done):
        return [PassReport(name, int(name in done), 1, 1, 0.0) for name in PASSES]

    assert optimized_for(reports()) is None
    assert optimized_for(reports("fold_affine", "fold_constants")) is None  # folding suits any backend
    assert optimized_for(reports("fold_affine", "polyphase_tail")) == "onnxruntime"
    assert optimized_for(reports("polyphase_tail", "col2im_interleave")) == "onnxruntime-cpu"


def test_portable_optimisation_leaves_out_the_cpu_only_passes():
    """The graphs the export makes for GPUs: no Col2Im, which onnxruntime runs on the CPU only."""
    from export.optimize import CPU_ONLY

    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])]
    m = model(nodes, [("x", ["b", 4, 16, 16])], ["y"], {"w": weight(4, 3, 4, 4)})
    cpu, cpu_reports = optimize(m)
    gpu, gpu_reports = optimize(m, portable=True)
    assert op_counts(cpu)["Col2Im"] == 1 and op_counts(gpu) == {"ConvTranspose": 1}
    assert {r.name for r in cpu_reports} - {r.name for r in gpu_reports} == CPU_ONLY


# --------------------------------------------------------------------------- cancel_transposes


def test_cancel_transposes_across_elementwise_ops_and_merges_the_rest():
    """depth-major -> Relu -> Tanh -> back cancels; a Transpose then another merges into one."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("LeakyRelu", ["r"], ["l"], alpha=0.3),
             helper.make_node("Transpose", ["l"], ["u"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["u"], ["v"], perm=[0, 1, 3, 2]),
             helper.make_node("Transpose", ["v"], ["y"], perm=[3, 1, 2, 0])]
    m = model(nodes, [("x", [2, 3, 4, 5])], ["y"], {})
    out, reports = optimize(m, ["cancel_transposes"])
    assert op_counts(out) == {"Relu": 1, "LeakyRelu": 1, "Transpose": 1}
    check_same(m, out, {"x": image(2, 3, 4, 5)})


def test_cancel_transposes_keeps_a_transpose_read_twice_or_before_a_binary_op():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[1, 0]),
             helper.make_node("Transpose", ["x"], ["s"], perm=[1, 0]),
             helper.make_node("Add", ["s", "k"], ["z"]),
             helper.make_node("Neg", ["s"], ["n"])]
    m = model(nodes, [("x", [3, 4])], ["y", "t", "z", "n"], {"k": weight(4, 3)})
    out, reports = optimize(m, ["cancel_transposes"])
    assert op_counts(out) == op_counts(m)
    check_same(m, out, {"x": RNG.standard_normal((3, 4)).astype(np.float32)})


# --------------------------------------------------------------------------- the pipeline


def test_optimize_refuses_unknown_passes_and_reports_every_pass():
    with pytest.raises(ValueError, match="unknown optimisation pass"):
        optimize(model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1])], ["y"], {}), ["fold_everything"])
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1])], ["y"], {})
    out, reports = optimize(m)
    assert [r.name for r in reports] == list(PASSES)
    assert "nothing to rewrite" in describe(reports)
    assert out is not m and op_counts(out) == op_counts(m)


def test_fresh_names_avoid_node_names_too():
    """An optimised file optimised again (a re-export of finished files) must stay a valid graph: a
    new node may not take the name of a node an earlier run made."""
    from export.optimize.graph import Graph

    m = model([helper.make_node("Relu", ["x"], ["y"], name="PhaseConv__opt1")], [("x", [1])], ["y"], {})
    assert Graph(m).fresh("PhaseConv") != "PhaseConv__opt1"


@pytest.mark.parametrize("kernel,bias", [((4, 4), True), ((2, 4, 4), False)])
def test_single_pixel_transpose_is_a_gemm(kernel, bias):
    """A latent seen as a 1 x 1 (x 1) image through a transposed convolution paints one patch: a Gemm."""
    c_in, c_out = 6, 5
    ones = [1] * len(kernel)
    inputs = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [helper.make_node("ConvTranspose", inputs, ["y"], strides=ones, kernel_shape=list(kernel))]
    inits = {"w": weight(c_in, c_out, *kernel), **({"b": weight(c_out)} if bias else {})}
    m = model(nodes, [("x", ["b", c_in, *ones])], ["y"], inits)
    out, reports = optimize(m, ["single_pixel_transpose"])
    assert op_counts(out) == {"Reshape": 2, "Gemm": 1}
    check_same(m, out, {"x": RNG.standard_normal((3, c_in, *ones)).astype(np.float32)})


# --------------------------------------------------------------------------- what must stay as it is


def test_no_pass_bakes_in_an_initializer_a_graph_input_may_override():
    """An initializer also listed as a graph input is a default the caller may replace at run time."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], pads=[1, 1, 1, 1]), helper.make_node("Mul", ["h", "k"], ["y"])]
    m = model(nodes, [("x", ["b", 4, 7, 7]), ("k", [1, 6, 1, 1])], ["y"], {"w": weight(6, 4, 3, 3), "k": np.ones((1, 6, 1, 1), np.float32)})
    out, reports = optimize(m)
    assert sum(r.rewrites for r in reports) == 0
    check_same(m, out, {"x": image(2, 4, 7, 7), "k": np.full((1, 6, 1, 1), 5.0, np.float32)})


def test_fold_crop_leaves_slices_computed_at_run_time_or_strided():
    w = weight(6, 5, 3, 3)
    base = {"w": w, "starts": np.array([1, 1], np.int64), "ends": np.array([8, 8], np.int64), "axes": np.array([2, 3], np.int64)}
    conv = helper.make_node("ConvTranspose", ["x", "w"], ["full"], strides=[2, 2], kernel_shape=[3, 3])
    run_time_steps = model([conv, helper.make_node("Slice", ["full", "starts", "ends", "axes", "steps"], ["y"])],
                           [("x", ["b", 6, 5, 5]), ("steps", [2])], ["y"], base)
    assert optimize(run_time_steps, ["fold_crop"])[1][0].rewrites == 0
    strided = model([conv, helper.make_node("Slice", ["full", "starts", "ends", "axes", "two"], ["y"])],
                    [("x", ["b", 6, 5, 5])], ["y"], {**base, "two": np.array([2, 2], np.int64)})
    assert optimize(strided, ["fold_crop"])[1][0].rewrites == 0


def test_polyphase_tail_leaves_an_activation_read_twice_and_a_strided_conv():
    up = helper.make_node("ConvTranspose", ["x", "w1"], ["up"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    inits = {"w1": weight(4, 4, 3, 3), "w2": weight(3, 4, 3, 3)}
    read_twice = model([up, helper.make_node("Relu", ["up"], ["act"]),
                        helper.make_node("Conv", ["act", "w2"], ["y"], pads=[1, 1, 1, 1]),
                        helper.make_node("Sigmoid", ["act"], ["side"])], [("x", ["b", 4, 5, 5])], ["y", "side"], inits)
    assert optimize(read_twice, ["polyphase_tail"])[1][0].rewrites == 0
    strided = model([up, helper.make_node("Conv", ["up", "w2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
                    [("x", ["b", 4, 5, 5])], ["y"], inits)
    assert optimize(strided, ["polyphase_tail"])[1][0].rewrites == 0


def test_polyphase_tail_stride_three_and_uneven_pads():
    """Stride 3, a 5-tap kernel with uneven pads, a non-square following convolution."""
    c_in, c_mid, size = 3, 4, 5
    nodes = [helper.make_node("ConvTranspose", ["x", "w1"], ["up"], strides=[3, 3], pads=[1, 2, 2, 1],
                              output_padding=[1, 1], kernel_shape=[5, 5]),
             helper.make_node("Tanh", ["up"], ["act"]),
             helper.make_node("Conv", ["act", "w2", "b2"], ["y"], pads=[1, 2, 1, 2], kernel_shape=[3, 5])]
    m = model(nodes, [("x", ["b", c_in, size, size])], ["y"],
              {"w1": weight(c_in, c_mid, 5, 5), "w2": weight(2, c_mid, 3, 5), "b2": weight(2)})
    out, reports = optimize(m, ["polyphase_tail"])
    assert reports[0].rewrites == 1
    check_same(m, out, {"x": image(2, c_in, size, size)})


def test_fold_affine_gemm_with_alpha_beta_and_transposed_weights_then_div():
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["h"], alpha=0.5, beta=2.0, transB=1),
             helper.make_node("Div", ["h", "d"], ["y"])]
    m = model(nodes, [("x", ["b", 7])], ["y"], {"w": weight(5, 7), "c": weight(5), "d": np.abs(weight(5)) + 0.5})
    out, reports = optimize(m, ["fold_affine"])
    assert op_counts(out) == {"Gemm": 1}
    check_same(m, out, {"x": RNG.standard_normal((3, 7)).astype(np.float32)})


def test_single_pixel_and_unit_stride_leave_padded_or_larger_inputs():
    padded = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])],
                   [("x", ["b", 4, 1, 1])], ["y"], {"w": weight(4, 3, 3, 3)})
    assert optimize(padded, ["single_pixel_transpose"])[1][0].rewrites == 0
    dilated = model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], dilations=[2, 2], kernel_shape=[3, 3])],
                    [("x", ["b", 4, 5, 5])], ["y"], {"w": weight(4, 3, 3, 3)})
    assert optimize(dilated, ["single_pixel_transpose", "unit_stride_transpose"])[1][0].rewrites == 0
    assert optimize(dilated, ["unit_stride_transpose"])[1][0].rewrites == 0


def test_fold_constants_folds_a_node_with_an_empty_optional_input():
    nodes = [helper.make_node("Clip", ["k", "", "hi"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])]
    m = model(nodes, [("x", [2, 3])], ["y"], {"k": weight(2, 3, scale=3.0), "hi": np.array(0.5, np.float32)})
    out, reports = optimize(m, ["fold_constants"])
    assert op_counts(out) == {"Add": 1}
    check_same(m, out, {"x": RNG.standard_normal((2, 3)).astype(np.float32)})
