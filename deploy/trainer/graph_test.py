"""Checks graph.py: a hand-declared ResNet-18 (GroupNorm) against an
independently written torch module, every op against torch.nn.functional,
and the graph_parity.py CLI on a tiny graph. Run: python3 graph_test.py
(extrainer/graph_test.go runs it in CI)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cnn  # noqa: E402
import graph  # noqa: E402

DEFAULTS = {
    "conv": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "groupnorm": {"eps": 1e-5}, "layernorm": {"eps": 1e-5}, "leakyrelu": {"slope": 0.01},
    "maxpool": {"padding": 0}, "avgpool": {"padding": 0}, "dense": {"bias": True}, "upsample": {"scale": 2},
}


def manifest(c, h, w, classes, layers):
    """A normalised manifest, built here independently of graph.py's checks."""
    prev, norm = "input", []
    for l in layers:
        l = dict(DEFAULTS.get(l["op"], {}), **l)
        if l["op"] in ("maxpool", "avgpool"):
            l.setdefault("stride", l["kernel"])
        l.setdefault("inputs", [prev])
        prev = l["name"]
        norm.append(l)
    m = {"version": "concord.graph/1", "arch": "graph", "input": [c, h, w], "classes": classes,
         "layers": norm, "params": [], "total": 0}
    model = graph.Graph(norm, graph_shapes(m))
    off = 0
    for name, p in model.named_parameters():
        m["params"].append({"name": name, "shape": list(p.shape), "offset": off, "size": p.numel()})
        off += p.numel()
    m["total"] = off
    return m


def graph_shapes(m):
    shape, shapes = {"input": m["input"]}, []
    for l in m["layers"]:
        ins = [shape[i] for i in l["inputs"]]
        out, _ = graph._infer(l, ins)
        shape[l["name"]] = out
        shapes.append((ins[0], out))
    return shapes


def resnet18_layers(width=8, classes=3):
    ls = [{"name": "stem", "op": "conv", "out": width, "kernel": 7, "stride": 2, "padding": 3, "bias": False},
          {"name": "stem_gn", "op": "groupnorm", "groups": 2},
          {"name": "stem_act", "op": "relu"},
          {"name": "pool0", "op": "maxpool", "kernel": 3, "stride": 2, "padding": 1}]
    prev, cin = "pool0", width
    for s, mult in enumerate((1, 2, 4, 8)):
        cout = width * mult
        for b in range(2):
            p = f"l{s + 1}b{b}"
            stride = 2 if s > 0 and b == 0 else 1
            ls += [{"name": p + "_c1", "op": "conv", "out": cout, "kernel": 3, "stride": stride, "padding": 1,
                    "bias": False, "inputs": [prev]},
                   {"name": p + "_g1", "op": "groupnorm", "groups": 2},
                   {"name": p + "_a1", "op": "relu"},
                   {"name": p + "_c2", "op": "conv", "out": cout, "kernel": 3, "padding": 1, "bias": False},
                   {"name": p + "_g2", "op": "groupnorm", "groups": 2}]
            short = prev
            if stride != 1 or cin != cout:
                ls += [{"name": p + "_dc", "op": "conv", "out": cout, "kernel": 1, "stride": stride, "bias": False,
                        "inputs": [prev]},
                       {"name": p + "_dg", "op": "groupnorm", "groups": 2}]
                short = p + "_dg"
            ls += [{"name": p + "_add", "op": "add", "inputs": [p + "_g2", short]},
                   {"name": p + "_out", "op": "relu"}]
            prev, cin = p + "_out", cout
    ls += [{"name": "gap", "op": "globalavgpool"}, {"name": "fc", "op": "dense", "out": classes}]
    return ls


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.g1 = nn.GroupNorm(2, cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.g2 = nn.GroupNorm(2, cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(2, cout))

    def forward(self, x):
        y = self.g2(self.c2(F.relu(self.g1(self.c1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self, c, width, classes):
        super().__init__()
        self.stem = nn.Conv2d(c, width, 7, 2, 3, bias=False)
        self.gn = nn.GroupNorm(2, width)
        blocks, cin = [], width
        for s, mult in enumerate((1, 2, 4, 8)):
            for b in range(2):
                blocks.append(Block(cin, width * mult, 2 if s > 0 and b == 0 else 1))
                cin = width * mult
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.gn(self.stem(x))), 3, 2, 1)
        for b in self.blocks:
            x = b(x)
        return self.fc(x.mean((2, 3)))

    def by_graph_name(self):
        """Map the declared names to this module's parameters."""
        out = {"stem.weight": self.stem.weight, "stem_gn.weight": self.gn.weight, "stem_gn.bias": self.gn.bias,
               "fc.weight": self.fc.weight, "fc.bias": self.fc.bias}
        for i, b in enumerate(self.blocks):
            p = f"l{i // 2 + 1}b{i % 2}"
            out.update({p + "_c1.weight": b.c1.weight, p + "_g1.weight": b.g1.weight, p + "_g1.bias": b.g1.bias,
                        p + "_c2.weight": b.c2.weight, p + "_g2.weight": b.g2.weight, p + "_g2.bias": b.g2.bias})
            if b.down is not None:
                out.update({p + "_dc.weight": b.down[0].weight, p + "_dg.weight": b.down[1].weight,
                            p + "_dg.bias": b.down[1].bias})
        return out


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def random_flat(m, seed):
    return np.random.default_rng(seed).normal(0, 0.3, m["total"]).astype(np.float32)


class GraphTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        torch.set_num_threads(1)

    def test_resnet18_matches_handwritten(self):
        m = manifest(3, 32, 32, 3, resnet18_layers())
        model, params = graph.build(m)
        ref = ResNet18(3, 8, 3)
        names = ref.by_graph_name()
        self.assertEqual(sorted(names), sorted(p[0] for p in params))
        w = random_flat(m, 1)
        cnn.load_flat(model, params, w)
        with torch.no_grad():
            for name, _, off, size in params:
                names[name].copy_(torch.from_numpy(w[off:off + size]).view_as(names[name]))
        x = torch.randn(4, 3, 32, 32)
        y = torch.tensor([0, 1, 2, 1])
        out, rout = model(x), ref(x)
        self.assertTrue(torch.allclose(out, rout, atol=1e-5, rtol=1e-5), (out - rout).abs().max())
        graph.loss(model, out, y).mean().backward()
        F.cross_entropy(rout, y).backward()
        state = dict(model.named_parameters())
        for name, _, _, _ in params:
            g, rg = state[name].grad, names[name].grad
            self.assertTrue(torch.allclose(g, rg, atol=1e-5, rtol=1e-4), f"{name}: {(g - rg).abs().max()}")

    def test_every_op_matches_functional(self):
        x = torch.randn(2, 4, 8, 8)
        cases = [
            ({"op": "conv", "out": 6, "kernel": 3, "stride": 2, "padding": 1, "dilation": 2, "groups": 2},
             lambda p, x: F.conv2d(x, p["weight"], p["bias"], 2, 1, 2, 2)),
            ({"op": "conv", "out": 4, "kernel": 1, "bias": False}, lambda p, x: F.conv2d(x, p["weight"])),
            ({"op": "groupnorm", "groups": 2, "eps": 1e-3},
             lambda p, x: F.group_norm(x, 2, p["weight"], p["bias"], 1e-3)),
            ({"op": "layernorm"}, lambda p, x: F.group_norm(x, 1, p["weight"], p["bias"], 1e-5)),
            ({"op": "relu"}, lambda p, x: F.relu(x)),
            ({"op": "sigmoid"}, lambda p, x: torch.sigmoid(x)),
            ({"op": "tanh"}, lambda p, x: torch.tanh(x)),
            ({"op": "leakyrelu", "slope": 0.2}, lambda p, x: F.leaky_relu(x, 0.2)),
            ({"op": "maxpool", "kernel": 3, "stride": 2, "padding": 1}, lambda p, x: F.max_pool2d(x, 3, 2, 1)),
            ({"op": "avgpool", "kernel": 3, "stride": 2, "padding": 1},
             lambda p, x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)),
            ({"op": "avgpool", "kernel": 2}, lambda p, x: F.avg_pool2d(x, 2)),
            ({"op": "globalavgpool"}, lambda p, x: x.mean((2, 3))),
            ({"op": "globalmaxpool"}, lambda p, x: x.amax((2, 3))),
            ({"op": "dropout", "p": 0.5}, lambda p, x: x),
            ({"op": "dense", "out": 5}, lambda p, x: F.linear(x.flatten(1), p["weight"], p["bias"])),
            ({"op": "upsample", "scale": 2}, lambda p, x: F.interpolate(x, scale_factor=2, mode="nearest")),
        ]
        for i, (layer, fn) in enumerate(cases):
            with self.subTest(op=layer["op"], case=i):
                layer = dict(layer, name="l")
                head = [] if layer["op"] in ("globalavgpool", "globalmaxpool", "dense") else [{"name": "gap", "op": "globalavgpool"}]
                m = manifest(4, 8, 8, 0, [layer] + head)
                m["classes"] = graph_shapes(m)[-1][1][0]
                model, params = graph.build(m)
                cnn.load_flat(model, params, random_flat(m, i))
                model.eval()
                mod = model.mods["l"] if "l" in model.mods else None
                p = {} if mod is None else {"weight": mod.weight, "bias": mod.bias}
                want = fn(p, x)
                if head:
                    want = want.mean((2, 3))
                got = model(x)
                self.assertTrue(torch.allclose(got, want, atol=1e-6), (got - want).abs().max())
        two = [{"name": "a", "op": "conv", "out": 3, "kernel": 1}, {"name": "b", "op": "relu", "inputs": ["input"]},
               {"name": "s", "op": "add", "inputs": ["a", "a"]},
               {"name": "c", "op": "concat", "inputs": ["s", "b"]}, {"name": "gap", "op": "globalavgpool"}]
        m = manifest(4, 8, 8, 7, two)
        model, params = graph.build(m)
        cnn.load_flat(model, params, random_flat(m, 9))
        a = model.mods["a"](x)
        want = torch.cat([a + a, F.relu(x)], 1).mean((2, 3))
        self.assertTrue(torch.allclose(model(x), want, atol=1e-6))

    def test_bad_manifests_are_refused(self):
        base = [{"name": "c", "op": "conv", "out": 2, "kernel": 3, "padding": 1}, {"name": "gap", "op": "globalavgpool"}]
        m = manifest(1, 8, 8, 2, base)
        for mutate, want in [
            (lambda m: m["layers"][0].update(op="bogus"), "not supported"),
            (lambda m: m["layers"][1].update(inputs=["later"]), "inputs"),
            (lambda m: m["params"][0].update(shape=[2, 1, 5, 5]), "does not match"),
            (lambda m: m.update(total=3), "total"),
            (lambda m: m["layers"][0].update(name="input"), "name"),
            (lambda m: m["layers"].insert(1, {"name": "up", "op": "upsample", "scale": 10000, "inputs": ["c"]}),
             "more than"),
        ]:
            bad = json.loads(json.dumps(m))
            mutate(bad)
            with self.assertRaisesRegex(cnn.ManifestError, want):
                graph.build(bad)

    def test_segmentation_loss(self):
        ls = [{"name": "c", "op": "conv", "out": 1, "kernel": 3, "padding": 1}]
        model, _ = graph.build(manifest(1, 8, 8, 1, ls))
        out = torch.randn(2, 1, 8, 8)
        mask = (torch.rand(2, 8, 8) > 0.5).float()
        p = torch.sigmoid(out[:, 0]).flatten(1)
        t = mask.flatten(1)
        bce = F.binary_cross_entropy_with_logits(out[:, 0], mask, reduction="none").flatten(1).mean(1)
        want = bce + 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
        self.assertTrue(torch.allclose(graph.loss(model, out, mask), want, atol=1e-6))

    def test_parity_cli_round_trip(self):
        ls = [{"name": "c", "op": "conv", "out": 2, "kernel": 3, "padding": 1}, {"name": "a", "op": "relu"},
              {"name": "fc", "op": "dense", "out": 2}]
        m = manifest(1, 4, 4, 2, ls)
        w = random_flat(m, 3)
        x = np.random.default_rng(4).normal(size=(3, 16)).astype(np.float32)
        req = {"manifest": m, "weights": w.tolist(), "input": x.tolist(), "labels": [0, 1, 1], "train": False}
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "in.json"), os.path.join(d, "out.json")
            write(src, req)
            subprocess.run([sys.executable, os.path.join(HERE, "graph_parity.py"), src, dst], check=True)
            with open(dst) as f:
                res = json.load(f)
            req["labels"] = [0, 5, 1]
            write(src, req)
            bad = subprocess.run([sys.executable, os.path.join(HERE, "graph_parity.py"), src, dst],
                                 capture_output=True, text=True)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("labels", bad.stderr)
        model, params = graph.build(m)
        cnn.load_flat(model, params, w)
        out = model(torch.from_numpy(x).view(3, 1, 4, 4))
        loss = F.cross_entropy(out, torch.tensor([0, 1, 1]))
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for _, p in model.named_parameters()])
        np.testing.assert_allclose(res["output"], out.detach().numpy(), atol=1e-6)
        self.assertAlmostEqual(res["loss"], float(loss), places=6)
        self.assertEqual(len(res["grad"]), m["total"])
        np.testing.assert_allclose(res["grad"], grad.numpy(), atol=1e-6)

    def test_parity_cli_segmentation(self):
        ls = [{"name": "c", "op": "conv", "out": 3, "kernel": 3, "padding": 1}]
        m = manifest(1, 4, 4, 3, ls)
        w = random_flat(m, 5)
        x = np.random.default_rng(6).normal(size=(2, 16)).astype(np.float32)
        masks = np.random.default_rng(7).integers(0, 3, size=(2, 16))
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "in.json"), os.path.join(d, "out.json")
            write(src, {"manifest": m, "weights": w.tolist(), "input": x.tolist(), "masks": masks.tolist()})
            subprocess.run([sys.executable, os.path.join(HERE, "graph_parity.py"), src, dst], check=True)
            with open(dst) as f:
                res = json.load(f)
        model, params = graph.build(m)
        cnn.load_flat(model, params, w)
        out = model(torch.from_numpy(x).view(2, 1, 4, 4))
        t = torch.from_numpy(masks).view(2, 4, 4)
        p = torch.softmax(out, 1)
        oh = F.one_hot(t, 3).permute(0, 3, 1, 2).float()
        dice = (2 * (p * oh).sum((2, 3)) + 1) / (p.sum((2, 3)) + oh.sum((2, 3)) + 1)
        want = F.cross_entropy(out, t) + 1 - dice.mean()
        self.assertAlmostEqual(res["loss"], float(want), places=5)
        self.assertEqual(len(res["output"][0]), 48)


if __name__ == "__main__":
    unittest.main()
