"""Checks unet.py against the Go U-Net: reads a directory written by
site-agent/external_unet_test.go (manifest.json, meta.json and little-endian
float32 files w0, x, mask, pred, w1), runs the same forward pass and one
full-batch SGD step, and exits 1 naming the first quantity that differs."""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet  # noqa: E402


def main(d):
    torch.set_num_threads(1)
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    meta = json.load(open(os.path.join(d, "meta.json")))
    f = lambda name: np.fromfile(os.path.join(d, name), dtype="<f4")  # noqa: E731
    model, params = unet.build(manifest)
    unet.load_flat(params, f("w0"))
    c, h, w = manifest["input"]
    n = meta["n"]
    x = torch.from_numpy(f("x").reshape(n, c, h, w))
    mask = torch.from_numpy(f("mask").reshape(n, h, w))
    logit = model(x)
    pred = torch.sigmoid(logit).detach().numpy().reshape(-1)
    want = f("pred")
    err = np.abs(pred - want).max() / max(np.abs(want).max(), 1e-12)
    print(f"forward: max relative error {err:.2e}")
    if err > 1e-4:
        sys.exit(f"forward probabilities differ from Go: max relative error {err:.2e} > 1e-4")
    opt = torch.optim.SGD(params, lr=meta["lr"], momentum=0)
    loss = unet.seg_loss(logit, mask).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    w0, w1, got = f("w0"), f("w1"), unet.flatten(params)
    step = np.abs(w1 - w0).max()
    serr = np.abs(got - w1).max() / step
    print(f"loss {float(loss):.6f}; one SGD step: max error {serr:.2e} of the largest update {step:.2e}")
    if serr > 1e-3:
        sys.exit(f"one SGD step differs from Go: max error {serr:.2e} of the largest update > 1e-3")


if __name__ == "__main__":
    main(sys.argv[1])
