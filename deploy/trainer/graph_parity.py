"""Parity CLI for declared graphs: python3 graph_parity.py IN.json OUT.json

IN.json = {"manifest": {...}, "weights": [flat float32], "input": [[C*H*W] per
example], "labels": [int per example] or "masks": [[H*W or k-channel
class-index H*W] per example], "train": false}. OUT.json = {"output":
[[flattened logits] per example], "loss": mean loss over the batch, "grad":
[flat gradient of the mean loss in layout order]}. Runs on the CPU in
float32; dropout is identity unless train is true. Exits 1 with the reason
on bad input."""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnn  # noqa: E402
import graph  # noqa: E402

MAX_IN_BYTES = 1 << 30


def run(req):
    if not isinstance(req, dict):
        raise ValueError("IN.json is not a JSON object")
    model, params = graph.build(req.get("manifest"))
    total = params[-1][2] + params[-1][3] if params else 0
    w = np.asarray(req.get("weights"), dtype=np.float32)
    if w.ndim != 1 or len(w) != total:
        raise ValueError(f"weights hold {w.size} values, the manifest {total}")
    cnn.load_flat(model, params, w)
    c, h, wd = req["manifest"]["input"]
    x = np.asarray(req.get("input"), dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != c * h * wd or x.shape[0] < 1:
        raise ValueError(f"input has shape {x.shape}, want [N, {c * h * wd}]")
    n = x.shape[0]
    if graph.is_segmentation(model):
        m = np.asarray(req.get("masks"), dtype=np.float32)
        if m.shape != (n, h * wd):
            raise ValueError(f"masks have shape {m.shape}, want [{n}, {h * wd}]")
        target = torch.from_numpy(m.reshape(n, h, wd))
    else:
        y = np.asarray(req.get("labels"))
        k = req["manifest"]["classes"]
        if y.shape != (n,) or y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= k:
            raise ValueError(f"labels {y.shape} must be {n} integers in 0..{k - 1}")
        target = torch.from_numpy(y.astype(np.int64))
    model.train(bool(req.get("train", False)))
    out = model(torch.from_numpy(x.reshape(n, c, h, wd)))
    loss = graph.loss(model, out, target).mean()
    model.zero_grad()
    loss.backward()
    state = dict(model.named_parameters())
    grad = torch.cat([state[name].grad.reshape(-1) for name, _, _, _ in params]) if params else torch.zeros(0)
    return {"output": out.detach().reshape(n, -1).tolist(), "loss": float(loss), "grad": grad.tolist()}


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: graph_parity.py IN.json OUT.json")
    torch.set_num_threads(1)
    try:
        if os.path.getsize(argv[1]) > MAX_IN_BYTES:
            raise ValueError(f"larger than {MAX_IN_BYTES} bytes")
        with open(argv[1]) as f:
            req = json.load(f)
        res = run(req)
    except (OSError, ValueError, KeyError, TypeError, cnn.ManifestError) as e:
        sys.exit(f"{argv[1]}: {e}")
    with open(argv[2], "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv)
