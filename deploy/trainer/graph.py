"""Declared graphs (manifest version "concord.graph/1", arch "graph").

The Go side normalises a job's layer list (every default filled in, every
layer's inputs explicit) and sends it in the layout manifest's "layers"
array; this module builds the same graph as a torch nn.Module with no
knowledge of families such as resnet18. Parameter names are the manifest's
("NAME.weight", "NAME.bias"), so load_flat/flatten in cnn.py work unchanged
on the module returned here.

Design choices:
- Layers are held in an nn.ModuleDict keyed by the layer name with "." kept
  out (names are [a-z0-9_]+), so named_parameters() yields the manifest names.
- Shapes are inferred once at build time by walking the declaration, and the
  manifest's params (names, shapes, offsets, sizes) are checked against them;
  any mismatch is a ManifestError naming the layer.
- Losses follow the Go trainer: classification is softmax cross-entropy;
  segmentation with one output channel is unet.seg_loss (BCE + 1 - Dice);
  with k >= 2 channels the mask holds a class index per pixel and the loss is
  softmax cross-entropy + 1 - mean soft Dice over the k classes (smoothing 1).
"""
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import unet
from cnn import ManifestError

MANIFEST_VERSIONS = ("concord.graph/1",)
ARCHS = ("graph",)
NAME = re.compile(r"^[a-z0-9_]+$")
MAX_LAYERS = 4096
MAX_ACTIVATION = 1 << 28  # values in one layer's output for one example


def _int(layer, key, lo=0):
    v = layer.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ManifestError(f"layer {layer.get('name')!r}: {key} {v!r}, want an integer >= {lo}")
    return v


def _num(layer, key, lo, hi):
    v = layer.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v < hi:
        raise ManifestError(f"layer {layer.get('name')!r}: {key} {v!r}, want a number in [{lo}, {hi})")
    return float(v)


class Graph(nn.Module):
    """The declared graph; forward returns the last layer's output."""

    def __init__(self, layers, shapes):
        super().__init__()
        self.layers = layers
        self.shapes = shapes
        self.mods = nn.ModuleDict()
        for layer, (cin, _) in zip(layers, shapes):
            m = _module(layer, cin)
            if m is not None:
                self.mods[layer["name"]] = m

    def named_parameters(self, prefix="", recurse=True, **kw):
        # Strip the "mods." prefix so names match the manifest.
        for name, p in super().named_parameters(prefix, recurse, **kw):
            yield name[len("mods."):] if name.startswith("mods.") else name, p

    def forward(self, x):
        out = {"input": x}
        y = x
        for layer in self.layers:
            ins = [out[i] for i in layer["inputs"]]
            y = self._run(layer, ins)
            out[layer["name"]] = y
        return y

    def _run(self, layer, ins):
        op, x = layer["op"], ins[0]
        if op in ("conv", "groupnorm", "layernorm", "dense"):
            if op == "dense":
                x = x.flatten(1)
            return self.mods[layer["name"]](x)
        if op == "relu":
            return F.relu(x)
        if op == "sigmoid":
            return torch.sigmoid(x)
        if op == "tanh":
            return torch.tanh(x)
        if op == "leakyrelu":
            return F.leaky_relu(x, layer["slope"])
        if op == "maxpool":
            return F.max_pool2d(x, layer["kernel"], layer["stride"], layer["padding"])
        if op == "avgpool":
            return F.avg_pool2d(x, layer["kernel"], layer["stride"], layer["padding"], count_include_pad=True)
        if op == "globalavgpool":
            return x.mean(dim=(2, 3))
        if op == "globalmaxpool":
            return x.amax(dim=(2, 3))
        if op == "add":
            y = ins[0]
            for t in ins[1:]:
                y = y + t
            return y
        if op == "concat":
            return torch.cat(ins, dim=1)
        if op == "dropout":
            return F.dropout(x, layer["p"], self.training)
        if op == "upsample":
            return F.interpolate(x, scale_factor=layer["scale"], mode="nearest")
        raise ManifestError(f"layer {layer['name']!r}: op {op!r} is not supported")


def _module(layer, cin):
    op = layer["op"]
    if op == "conv":
        return nn.Conv2d(cin[0], layer["out"], layer["kernel"], layer["stride"], layer["padding"],
                         layer["dilation"], layer["groups"], layer["bias"])
    if op == "groupnorm":
        return nn.GroupNorm(layer["groups"], cin[0], layer["eps"])
    if op == "layernorm":
        return nn.GroupNorm(1, cin[0], layer["eps"])
    if op == "dense":
        return nn.Linear(int(np.prod(cin)), layer["out"], layer["bias"])
    return None


def _pool_side(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _infer(layer, ins):
    """Output shape of one layer and its parameters [(name, shape)]."""
    name, op = layer["name"], layer["op"]
    x = ins[0]
    spatial = len(x) == 3

    def need_spatial():
        if not spatial:
            raise ManifestError(f"layer {name!r} ({op}) needs a [C,H,W] input, got {x}")

    if op == "conv":
        need_spatial()
        out, k, s, p, d, g = (_int(layer, "out", 1), _int(layer, "kernel", 1), _int(layer, "stride", 1),
                              _int(layer, "padding"), _int(layer, "dilation", 1), _int(layer, "groups", 1))
        if x[0] % g or out % g:
            raise ManifestError(f"layer {name!r}: groups {g} do not divide in {x[0]} / out {out}")
        h, w = _pool_side(x[1], k, s, p, d), _pool_side(x[2], k, s, p, d)
        if h < 1 or w < 1:
            raise ManifestError(f"layer {name!r}: kernel {k} leaves no output from {x}")
        ps = [(name + ".weight", [out, x[0] // g, k, k])]
        if layer.get("bias") is not False:
            ps.append((name + ".bias", [out]))
        return [out, h, w], ps
    if op in ("groupnorm", "layernorm"):
        need_spatial()
        g = 1 if op == "layernorm" else _int(layer, "groups", 1)
        if x[0] % g:
            raise ManifestError(f"layer {name!r}: {g} groups do not divide {x[0]} channels")
        _num(layer, "eps", 0, 1)
        return list(x), [(name + ".weight", [x[0]]), (name + ".bias", [x[0]])]
    if op in ("relu", "sigmoid", "tanh", "dropout"):
        if op == "dropout":
            _num(layer, "p", 0, 1)
        return list(x), []
    if op == "leakyrelu":
        _num(layer, "slope", -1e6, 1e6)
        return list(x), []
    if op in ("maxpool", "avgpool"):
        need_spatial()
        k, s, p = _int(layer, "kernel", 1), _int(layer, "stride", 1), _int(layer, "padding")
        if 2 * p > k:
            raise ManifestError(f"layer {name!r}: padding {p} exceeds half the kernel {k}")
        h, w = _pool_side(x[1], k, s, p), _pool_side(x[2], k, s, p)
        if h < 1 or w < 1:
            raise ManifestError(f"layer {name!r}: kernel {k} leaves no output from {x}")
        return [x[0], h, w], []
    if op in ("globalavgpool", "globalmaxpool"):
        need_spatial()
        return [x[0]], []
    if op == "add":
        if len(ins) < 2 or any(t != x for t in ins):
            raise ManifestError(f"layer {name!r}: add needs >= 2 inputs of one shape, got {ins}")
        return list(x), []
    if op == "concat":
        if len(ins) < 2 or any(len(t) != 3 or t[1:] != x[1:] for t in ins) or not spatial:
            raise ManifestError(f"layer {name!r}: concat needs >= 2 [C,H,W] inputs of one H,W, got {ins}")
        return [sum(t[0] for t in ins)] + list(x[1:]), []
    if op == "dense":
        out = _int(layer, "out", 1)
        ps = [(name + ".weight", [out, int(np.prod(x))])]
        if layer.get("bias") is not False:
            ps.append((name + ".bias", [out]))
        return [out], ps
    if op == "upsample":
        need_spatial()
        s = _int(layer, "scale", 1)
        return [x[0], x[1] * s, x[2] * s], []
    raise ManifestError(f"layer {name!r}: op {op!r} is not supported")


def build(manifest):
    """Build the graph a manifest declares, checking every entry.

    Returns (model, params) like cnn.build: params is the manifest's list of
    (name, shape, offset, size)."""
    if not isinstance(manifest, dict):
        raise ManifestError("manifest is not a JSON object")
    if manifest.get("version") not in MANIFEST_VERSIONS:
        raise ManifestError(f"manifest version {manifest.get('version')!r} is not a graph manifest")
    if manifest.get("arch") not in ARCHS:
        raise ManifestError(f"arch {manifest.get('arch')!r} is not supported by graph.py")
    inp = manifest.get("input")
    if not (isinstance(inp, list) and len(inp) == 3 and all(isinstance(v, int) and v >= 1 for v in inp)):
        raise ManifestError(f"manifest input {inp!r} is not [channels, height, width]")
    classes = manifest.get("classes")
    if not isinstance(classes, int) or classes < 1:
        raise ManifestError(f"manifest classes {classes!r}: want an integer >= 1")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise ManifestError(f"manifest layers: want a list of 1..{MAX_LAYERS} layers")
    shape = {"input": list(inp)}
    shapes, want = [], []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ManifestError(f"manifest layer {i} is not an object")
        name = layer.get("name")
        if not isinstance(name, str) or not NAME.match(name) or name == "input" or name in shape:
            raise ManifestError(f"manifest layer {i}: name {name!r} is not a new [a-z0-9_]+ name other than input")
        ins = layer.get("inputs")
        if not isinstance(ins, list) or not ins or any(not isinstance(n, str) or n not in shape for n in ins):
            raise ManifestError(f"layer {name!r}: inputs {ins!r} must name earlier layers or input")
        cin = [shape[n] for n in ins]
        out, ps = _infer(layer, cin)
        if int(np.prod(out)) > MAX_ACTIVATION:
            raise ManifestError(f"layer {name!r}: output {out} holds more than {MAX_ACTIVATION} values per example")
        shape[name] = out
        shapes.append((cin[0], out))
        want += ps
    last = shapes[-1][1]
    if last != [classes] and not (len(last) == 3 and last[1:] == inp[1:] and last[0] in (1, classes)):
        raise ManifestError(f"the last layer's output {last} is neither [classes]={classes} nor [k,{inp[1]},{inp[2]}]")
    got = manifest.get("params")
    if not isinstance(got, list) or len(got) != len(want):
        raise ManifestError(f"manifest lists {len(got) if isinstance(got, list) else 'no'} parameters, the graph has {len(want)}")
    params, off = [], 0
    for entry, (name, shp) in zip(got, want):
        if not isinstance(entry, dict) or entry.get("name") != name or entry.get("shape") != shp:
            raise ManifestError(f"manifest entry {entry.get('name') if isinstance(entry, dict) else entry!r} does not match {name} {shp}")
        size = int(np.prod(shp))
        if entry.get("offset") != off or entry.get("size") != size:
            raise ManifestError(f"manifest entry {name}: offset/size {entry.get('offset')}/{entry.get('size')}, want {off}/{size}")
        params.append((name, shp, off, size))
        off += size
    if manifest.get("total") != off:
        raise ManifestError(f"manifest total {manifest.get('total')} but parameters add up to {off}")
    return Graph(layers, shapes), params


def is_segmentation(model):
    return len(model.shapes[-1][1]) == 3


def loss(model, out, target):
    """Per-example losses (N values) matching the Go trainer.

    target: class indices [N] (classification), a float mask [N,H,W]
    (one output channel) or class indices [N,H,W] (k >= 2 channels)."""
    if not is_segmentation(model):
        return F.cross_entropy(out, target.long(), reduction="none")
    if out.shape[1] == 1:
        return unet.seg_loss(out[:, 0], target.float())
    t = target.long()
    ce = F.cross_entropy(out, t, reduction="none").flatten(1).mean(1)
    p = torch.softmax(out, 1).flatten(2)
    oh = F.one_hot(t, out.shape[1]).permute(0, 3, 1, 2).flatten(2).to(p.dtype)
    dice = (2 * (p * oh).sum(2) + 1) / (p.sum(2) + oh.sum(2) + 1)
    return ce + 1 - dice.mean(1)
