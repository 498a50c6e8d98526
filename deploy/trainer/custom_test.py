"""Checks custom.py: the hash is checked before the import, the module's
parameters must match the manifest exactly (names, shapes, order), buffers
are refused, and `trainer.py layout` prints what the job pins. Run:
python3 custom_test.py (extrainer/custom_test.go runs it in CI)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cnn  # noqa: E402
import custom  # noqa: E402

NET = os.path.join(HERE, "..", "examples", "custom", "net.py")

BATCHNORM = b"""import torch.nn as nn
def build(channels, height, width, classes):
    return nn.Sequential(nn.Conv2d(channels, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * (height - 2) * (width - 2), classes))
"""

TWO_OUTPUTS = b"""import torch.nn as nn
def build(channels, height, width, classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 2))
"""

SIDE_EFFECT = b"""import os
open(os.environ["CONCORD_TEST_MARK"], "w").write("imported")
def build(channels, height, width, classes):
    raise RuntimeError("not reached")
"""


def code():
    with open(NET, "rb") as f:
        return f.read()


def manifest(layout, sha, c=1, h=28, w=28, classes=2):
    params, off = [], 0
    for e in layout:
        size = int(np.prod(e["shape"]))
        params.append({"name": e["name"], "shape": e["shape"], "offset": off, "size": size})
        off += size
    return {"version": "concord.custom/1", "arch": "custom", "input": [c, h, w], "classes": classes,
            "width": 0, "params": params, "total": off, "code": sha}


class CustomTest(unittest.TestCase):
    def setUp(self):
        self.code = code()
        self.sha = custom.sha256_hex(self.code)
        model, _ = custom.layout_command(NET, 1, 28, 28, 2)
        self.layout = model["layout"]

    def test_build_matches_and_trains(self):
        net, params = custom.build(manifest(self.layout, self.sha), self.code, self.sha)
        self.assertEqual([p[0] for p in params], [n for n, _ in net.named_parameters()])
        vec = np.arange(params[-1][2] + params[-1][3], dtype="<f4") / 100
        cnn.load_flat(net, params, vec)
        np.testing.assert_array_equal(cnn.flatten(net, params), vec)
        out = net(torch.zeros(3, 1, 28, 28))
        self.assertEqual(list(out.shape), [3, 2])

    def test_changed_code_not_imported(self):
        mark = os.path.join(tempfile.mkdtemp(), "mark")
        os.environ["CONCORD_TEST_MARK"] = mark
        pinned = custom.sha256_hex(b"something else")
        with self.assertRaisesRegex(custom.CodeError, "refusing to import"):
            custom.load(SIDE_EFFECT, pinned)
        self.assertFalse(os.path.exists(mark), "a module whose hash differs from the pin was executed")
        with self.assertRaisesRegex(custom.CodeError, "the round carries"):
            custom.build(manifest(self.layout, self.sha), self.code, pinned)

    def test_layout_mismatch_refused(self):
        swapped = [self.layout[1], self.layout[0]] + self.layout[2:]
        renamed = [dict(self.layout[0], name="stem.weight")] + self.layout[1:]
        reshaped = [dict(self.layout[0], shape=[4, 1, 3, 3])] + self.layout[1:]
        for name, lay in (("order", swapped), ("name", renamed), ("shape", reshaped), ("count", self.layout[:-1])):
            with self.subTest(name):
                with self.assertRaises(custom.CodeError):
                    custom.build(manifest(lay, self.sha), self.code, self.sha)

    def test_buffers_refused(self):
        sha = custom.sha256_hex(BATCHNORM)
        with self.assertRaisesRegex(custom.CodeError, "buffers"):
            custom.instantiate(custom.load(BATCHNORM, sha), 1, 28, 28, 2)

    def test_wrong_classes_refused(self):
        sha = custom.sha256_hex(TWO_OUTPUTS)
        with self.assertRaisesRegex(custom.CodeError, r"want \[1, 3\]"):
            custom.instantiate(custom.load(TWO_OUTPUTS, sha), 1, 28, 28, 3)

    def test_layout_cli(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "trainer.py"), "layout", "--code", NET, "--channels", "1",
                              "--height", "28", "--width", "28", "--classes", "2"], capture_output=True, check=True, text=True)
        model = json.loads(out.stdout)
        self.assertEqual(model["code"]["sha256"], self.sha)
        self.assertEqual(model["layout"], self.layout)
        self.assertEqual(model["layout"][0], {"name": "conv.weight", "shape": [8, 1, 3, 3]})


if __name__ == "__main__":
    unittest.main()
