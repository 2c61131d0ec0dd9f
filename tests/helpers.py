"""Model files the tests make themselves: a tiny ONNX with SSCD's contract and a small TorchScript with the
contract of Meta's file (no download, no weights); and made vectors for the search kernels' tests."""


def tiny_sscd_onnx(dims: int = 512, in_type: int | None = None, normalise: bool = True, seed: int = 0) -> bytes:
    """A small ONNX model with SSCD's contract (``image`` uint8 NHWC [batch, h, w, 3] in, ``embedding``
    [batch, dims] L2-normalised out): a 4x4 colour thumbnail of the image, mean removed, through a
    random orthonormal 48 -> dims map (so cosines are the thumbnails' cosines). Made by the test with
    onnx.helper: no torch, no download."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dims, 48)))  # orthonormal columns
    proj = q.T.astype(np.float32)  # (48, dims)
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Shape", ["nchw"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "one"], ["n"]),
        helper.make_node("Concat", ["n", "c44"], ["sizes"], axis=0),
        helper.make_node("Resize", ["nchw", "", "", "sizes"], ["small"], mode="linear", antialias=1),
        helper.make_node("Flatten", ["small"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat", "ax1"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "proj"], ["raw"]),
    ]
    nodes.append(helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2) if normalise
                 else helper.make_node("Identity", ["raw"], ["embedding"]))
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"), numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([3, 4, 4], np.int64), "c44"), numpy_helper.from_array(np.array([1], np.int64), "ax1"),
             numpy_helper.from_array(proj, "proj")]
    graph = helper.make_graph(
        nodes, "tiny_sscd",
        [helper.make_tensor_value_info("image", in_type or TensorProto.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dims])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_sscd_torchscript(seed: int = 0):
    """A small scripted module with the contract of Meta's SSCD TorchScript (ImageNet-normalised float NCHW
    in, L2-normalised 512-d out): conv, GeM pooling, projection. Returns the ScriptModule."""
    import torch

    from dedup.ops.sscd_net import GeM

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
            self.pool = GeM()
            self.fc = torch.nn.Linear(16, 512)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.pool(torch.relu(self.conv(x))).flatten(1)
            return torch.nn.functional.normalize(self.fc(x), dim=1)

    torch.manual_seed(seed)
    return torch.jit.script(Tiny().eval())


def planted(n: int, dim: int = 96, seed: int = 0):
    """Unit vectors, a tenth of them copies of another at cosines spread across 0.2-0.99."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    base, copy = rng.choice(n, (2, n // 10), replace=False)
    c = rng.uniform(0.2, 0.99, (n // 10, 1)).astype(np.float32)
    x[copy] = c * x[base] + np.sqrt(1 - c * c) * x[copy]
    return x / np.linalg.norm(x, axis=1, keepdims=True)
