"""prepare.GraphProgram, in-process: what the trusted eval refuses to load or run.

A handed-over model is a file the experiment wrote. Loading it must run nothing from the file
(no pickle), use ATen operations only (none that read files or hand out unwritten memory), and
keep every tensor inside the file and on an allowed device with a known dtype.
"""

import json
import pickle
import struct

import pytest
import torch

import prepare

T = prepare.MAX_SEQ_LEN
V = prepare.VOCAB_SIZE


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, V)

    def forward(self, x):
        return self.emb(x) * 0.5


def honest_graph(path):
    x = torch.zeros(1, T, dtype=torch.int64)
    header, blobs = prepare.trace_model(Tiny(), x)
    prepare.save_graph(path, header, blobs)
    return path


def read_graph(path):
    raw = open(path, "rb").read()
    start = len(prepare.GRAPH_MAGIC)
    (size,) = struct.unpack("<Q", raw[start:start + 8])
    return json.loads(raw[start + 8:start + 8 + size]), raw[start + 8 + size:]


def write_graph(path, header, data):
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(prepare.GRAPH_MAGIC + struct.pack("<Q", len(text)) + text + data)
    return path


def edited(tmp_path, change, name="edited.graph"):
    """An honest graph with `change(header)` applied (and the same tensor bytes)."""
    header, data = read_graph(honest_graph(tmp_path / "honest.graph"))
    change(header)
    return write_graph(tmp_path / name, header, data)


def run(path):
    program = prepare.GraphProgram(path)
    return program(torch.randint(0, V, program.shape))


def test_an_honest_graph_loads_and_runs(tmp_path):
    program = prepare.GraphProgram(honest_graph(tmp_path / "model.graph"))
    assert run(tmp_path / "model.graph").shape == (1, T, V)
    assert all(op.namespace == "aten" for op, _, _ in program.nodes)


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling creates the marker file


def test_a_pickle_payload_is_refused_unread(tmp_path):
    marker = tmp_path / "pickle-ran.marker"
    path = tmp_path / "model.graph"
    path.write_bytes(pickle.dumps({"model": Payload(marker), "val_bpb": 0.1}))
    with pytest.raises(ValueError, match=r"not a graph written by prepare.evaluate_bpb \(wrong magic\)"):
        prepare.GraphProgram(path)
    assert not marker.exists()


def test_a_pickle_behind_the_graph_magic_is_refused_unread(tmp_path):
    marker = tmp_path / "pickle-ran.marker"
    path = tmp_path / "model.graph"
    path.write_bytes(prepare.GRAPH_MAGIC + pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError):
        prepare.GraphProgram(path)
    assert not marker.exists()


def test_a_torch_save_file_with_a_payload_is_refused_unread(tmp_path):
    marker = tmp_path / "torch-save-ran.marker"
    path = tmp_path / "model.graph"
    torch.save({"state_dict": Tiny().state_dict(), "hook": Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(ValueError, match="wrong magic"):
        prepare.GraphProgram(path)
    assert not marker.exists()


def test_a_torch_export_program_is_refused(tmp_path):
    path = tmp_path / "model.pt2"
    exported = torch.export.export(Tiny(), (torch.zeros(1, T, dtype=torch.int64),))
    torch.export.save(exported, path)
    with pytest.raises(ValueError, match="wrong magic"):
        prepare.GraphProgram(path)


@pytest.mark.parametrize("op", ["aten.from_file.default", "aten.empty.memory_format", "aten.empty_like.default",
                                "aten.empty_strided.default", "aten.new_empty.default", "aten.resize_.default",
                                "aten.set_.source_Storage", "aten._unsafe_index.Tensor",
                                "prims.empty_strided.default", "torch.os.system", "os.system.default",
                                "builtins.eval.default", "aten.__class__.mro"])
def test_an_operation_outside_the_allowed_aten_set_is_refused(tmp_path, op):
    def change(header):
        header["nodes"].append({"op": op, "args": ["/etc/passwd"], "kwargs": {}})

    with pytest.raises(ValueError, match=r"\baten\b|harness does not run|not an ATen operation"):
        prepare.GraphProgram(edited(tmp_path, change))


@pytest.mark.parametrize("op", ["aten.no_such_operation.default", "aten.add", "aten.add.Tensor.extra",
                                "aten.__getattr__.system"])
def test_a_malformed_or_unknown_operation_is_refused(tmp_path, op):
    def change(header):
        header["nodes"].append({"op": op, "args": [], "kwargs": {}})

    with pytest.raises((ValueError, AttributeError)):
        prepare.GraphProgram(edited(tmp_path, change))


@pytest.mark.parametrize("entry", [{"offset": 10**12}, {"offset": -4}, {"nbytes": 4}, {"nbytes": 10**12},
                                   {"shape": [V, V, 1024]}, {"offset": 1, "nbytes": V * V * 4}])
def test_a_tensor_table_pointing_outside_the_file_is_refused(tmp_path, entry):
    def change(header):
        header["tensors"][0].update(entry)

    with pytest.raises((ValueError, RuntimeError)):
        prepare.GraphProgram(edited(tmp_path, change))


@pytest.mark.parametrize("where", ["input", "tensor", "argument"])
@pytest.mark.parametrize("device", ["meta", "cuda:0; rm -rf /", "disk", "cpu:../../x", "xla", "lazy"])
def test_a_graph_naming_another_device_is_refused(tmp_path, where, device):
    def change(header):
        if where == "input":
            header["input"]["device"] = device
        elif where == "tensor":
            header["tensors"][0]["device"] = device
        else:
            header["nodes"].insert(0, {"op": "aten.zeros.default", "args": [{"list": [1]}],
                                       "kwargs": {"device": {"device": device}}})

    with pytest.raises((ValueError, RuntimeError)):
        run(edited(tmp_path, change))


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "object", "qint8", "__class__", "int64; import os", "complex128"])
def test_a_graph_naming_a_weird_dtype_is_refused(tmp_path, dtype):
    def change(header):
        header["tensors"][0]["dtype"] = dtype

    with pytest.raises((ValueError, KeyError)):
        prepare.GraphProgram(edited(tmp_path, change))


def test_a_weird_dtype_argument_is_refused(tmp_path):
    def change(header):
        header["nodes"].insert(0, {"op": "aten.zeros.default", "args": [{"list": [1]}],
                                   "kwargs": {"dtype": {"dtype": "object"}}})

    with pytest.raises((ValueError, KeyError)):
        run(edited(tmp_path, change))


def test_a_view_reaching_outside_its_tensor_is_refused(tmp_path):
    """`aten._reshape_alias` makes a view without checking it fits its storage (as_strided does
    check): every op on it then reads the trusted process's heap beyond the tensor (its own data,
    the batch's targets), and an in-place op would write there."""
    small = torch.zeros(16)
    path = tmp_path / "oob.graph"
    header = {"input": {"shape": [1, T], "dtype": "int64", "device": "cpu"},
              "tensors": [{"name": "small", "dtype": "float32", "shape": [16], "device": "cpu", "offset": 0,
                           "nbytes": 64},
                          {"name": "zeros", "dtype": "float32", "shape": [1, T, V], "device": "cpu", "offset": 64,
                           "nbytes": T * V * 4}],
              "nodes": [{"op": "aten._reshape_alias.default", "args": [{"tensor": 0}, [V], [1]], "kwargs": {}},
                        {"op": "aten.add.Tensor", "args": [{"tensor": 1}, {"node": 0, "item": None}], "kwargs": {}}],
              "output": {"node": 1, "item": None}}
    write_graph(path, header, small.numpy().tobytes() + torch.zeros(1, T, V).numpy().tobytes())
    with pytest.raises((ValueError, RuntimeError)):
        out = run(path)  # if it runs, the logits hold 240 floats read from beyond the 16-float tensor
        pytest.fail(f"a view past its storage ran; it read {int((out[0, 0, 16:] != 0).sum())} non-zero heap "
                    "values from beyond the 16-float tensor")
