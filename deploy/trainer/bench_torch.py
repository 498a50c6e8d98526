#!/usr/bin/python3
"""Training speed of Concord's "cnn" in PyTorch on the CPU: the baseline that
`concord-bench train --json` compares the Go trainer against.

    python3 bench_torch.py --batch 64 --threads 2 --seconds 10 --width 16 --size 28 --channels 1
    python3 bench_torch.py --batch 16 --threads 2 --seconds 30 --manifest resnet18.layout.json

Trains the same architecture (deploy/trainer/cnn.py, the manifest contract;
with --manifest, the declared graph a Go layout manifest holds, built by
graph.py: `concord-bench train --model resnet18` passes its own)
with Adam (lr 1e-3) and softmax cross-entropy on random data for --seconds
after a short warm-up, and prints one JSON line:
{"samples_per_s": ..., "threads": ..., "batch": ..., ...}.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnn  # noqa: E402
import graph  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--norm", choices=("group", "none"), default="group")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--manifest", help="a concord.graph/1 layout manifest (JSON file) to build instead of the cnn")
    a = ap.parse_args()
    if a.manifest:
        with open(a.manifest) as f:
            man = json.load(f)
        a.channels, a.size, _ = man["input"]
        a.classes = man["classes"]
    if a.batch < 1 or a.threads < 1 or a.seconds <= 0 or a.width < 1 or a.size < 4 or a.size % 4 or a.channels not in (1, 3) or a.classes < 2:
        raise SystemExit("want batch >= 1, threads >= 1, seconds > 0, width >= 1, size divisible by 4, channels 1 or 3, classes >= 2")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if a.manifest:
        model, _ = graph.build(man)
    else:
        model, _ = cnn.build(cnn.manifest_for(a.channels, a.size, a.size, a.classes, a.width, norm=a.norm == "group"))
    model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = max(8 * a.batch, 512)
    x = torch.rand(n, a.channels, a.size, a.size, device=dev)
    y = torch.randint(0, a.classes, (n,), device=dev)

    def step(i):
        j = (i * a.batch) % (n - a.batch + 1)
        loss = F.cross_entropy(model(x[j:j + a.batch]), y[j:j + a.batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(a.warmup):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    steps, start = 0, time.perf_counter()
    while True:
        step(steps)
        steps += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= a.seconds:
            break
    print(json.dumps({
        "samples_per_s": steps * a.batch / elapsed, "threads": a.threads, "batch": a.batch,
        "width": a.width, "norm": a.norm, "size": a.size, "channels": a.channels, "classes": a.classes,
        "steps": steps, "seconds": elapsed, "device": dev.type, "torch": torch.__version__,
        "model": man.get("family") or man["arch"] if a.manifest else "cnn",
    }), flush=True)


if __name__ == "__main__":
    main()
