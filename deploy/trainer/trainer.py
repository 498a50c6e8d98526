#!/usr/bin/python3
"""Concord reference external trainer (PyTorch).

A site agent hands this process the global weights of a round, the layout
manifest and the round's settings over gRPC (service concord.v1.Trainer,
proto/concord/v1/trainer.proto); it trains on the site's data as the
agent's pipeline produced it, which the agent sends as hash-checked shards
into a bounded cache on this node (shards.py; DataHave/DataPut), on CUDA when present and on the CPU otherwise, and streams back the
updated weights in the same layout, the sample count and metrics. For a job
with record-level differential privacy it runs DP-SGD with the rate, clip,
noise and steps the agent sends (dp_round) and reports the steps and draws,
which the agent checks and accounts. It never talks to the coordinator:
update clipping, encryption, the privacy ledger and upload stay with the
agent.

    trainer.py serve --listen 127.0.0.1:50061 --shard-cache /cache --cache-bytes 17179869184
    trainer.py serve --listen 0.0.0.0:50061 --tls-cert c.pem --tls-key k.pem --tls-client-ca ca.pem
    trainer.py predict --manifest m.json --weights w.f32 --npz data.npz --split test
    trainer.py layout --code net.py --channels 1 --height 28 --width 28 --classes 2

On start "serve" prints one JSON line {"listening": ADDRESS, "device": ...}
to stdout. Shard pixels are used as sent (the pipeline standardised them);
a .npz (--data-root, for benchmarks and predict) has its uint8 pixels
scaled to [-1, 1] ((uint8/255 - 0.5)/0.5), as learning.LoadMedMNIST does.
"""
import argparse
import ipaddress
import json
import logging
import math
import os
import secrets
import signal
import sys
import threading
import time
from concurrent import futures

import numpy as np
import torch
import torch.nn.functional as F

import grpc

try:  # functorch ships with torch 1.13 (Debian bookworm); per-example grads in one pass
    from functorch import grad as ft_grad, make_functional, vmap
except ImportError:  # pragma: no cover - older torch: the per-example loop below
    ft_grad = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnn  # noqa: E402
import custom  # noqa: E402
import ddp  # noqa: E402
import graph  # noqa: E402
import shards  # noqa: E402
import unet  # noqa: E402
from concord.v1 import trainer_pb2  # noqa: E402

VERSION = "0.1.0"
CHUNK = 1 << 18  # float32 values per weight chunk (1 MiB)
PROGRESS_EVERY_S = 2.0
BUSY_WAIT_S = 30.0
SERVICE = "concord.v1.Trainer"

log = logging.getLogger("concord.trainer")


class BadRequest(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def build_model(manifest, code=b"", code_sha256=""):
    """cnn.build, unet.build or, for declared graphs, graph.build
    (classification graphs only: masks reach this trainer for the unet
    alone); custom.build for a consortium's module, from the code and pin
    TrainStart carries."""
    if isinstance(manifest, dict) and manifest.get("arch") in custom.ARCHS:
        return custom.build(manifest, code, code_sha256)
    if code or code_sha256:
        raise cnn.ManifestError("module code is carried for arch custom only")
    if isinstance(manifest, dict) and manifest.get("arch") in unet.ARCHS:
        return unet.build(manifest)
    if isinstance(manifest, dict) and manifest.get("version") in graph.MANIFEST_VERSIONS:
        model, params = graph.build(manifest)
        if graph.is_segmentation(model):
            raise cnn.ManifestError("segmentation graphs are not trained by this trainer yet: only the unet's masks are carried")
        return model, params
    return cnn.build(manifest)


def pick_device(choice):
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def load_npz(path, split, manifest):
    """Images as N x C x H x W uint8 (scaled per batch, so a large set costs
    a quarter of its float size in host memory) and labels as int64."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"{split}_images" not in z or f"{split}_labels" not in z:
                raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"dataset has no {split}_images/{split}_labels arrays (it has {', '.join(sorted(z.files))})")
            x, y = z[f"{split}_images"], z[f"{split}_labels"]
    except FileNotFoundError:
        raise BadRequest(grpc.StatusCode.FAILED_PRECONDITION, "dataset file not found on the trainer node")
    except (OSError, ValueError) as e:
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"dataset is not a readable .npz: {e}")
    c, h, w = manifest["input"]
    if x.dtype != np.uint8:
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"{split}_images has dtype {x.dtype}; want uint8")
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"{split}_images has shape {x.shape}; want N x H x W or N x H x W x C")
    if x.shape[1:] != (c, h, w):
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                         f"{split}_images are {x.shape[1]} x {x.shape[2]} x {x.shape[3]} (C x H x W), the model takes {c} x {h} x {w}")
    y = y.reshape(-1)
    if len(y) != len(x) or len(x) == 0:
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"{len(x)} images but {len(y)} labels")
    if y.min() < 0 or y.max() >= manifest["classes"]:
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"labels span {y.min()}..{y.max()}, the model has {manifest['classes']} classes")
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64))


def to_input(xb, device):
    """Pixels to the model's input on device: float32 shard pixels as they
    are, uint8 .npz pixels scaled to [-1, 1]."""
    if xb.dtype == torch.float32:
        return xb.to(device, non_blocking=True)
    return xb.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)


def round_setup(model, s, n):
    """What every local round starts from, on a model already on its device:
    generators seeded from the settings (the agent's int64 seed may be
    negative), FedProx's anchor (None without it), the optimiser, and the
    step budget. local_steps, when set, runs exactly that many batches,
    passing over the data in reshuffled epochs as often as needed
    (learning.Train's Steps)."""
    seed = s.seed % (1 << 63)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    g0 = [p.detach().clone() for p in model.parameters()] if s.prox_mu > 0 else None
    if s.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=s.learning_rate, momentum=s.momentum)
    else:
        # Momentum is SGD's; Adam keeps its usual betas, as the Go trainer does.
        opt = torch.optim.Adam(model.parameters(), lr=s.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    per_epoch = -(-n // s.batch_size)
    total_steps = s.local_steps if s.local_steps > 0 else s.epochs * per_epoch
    epochs = -(-total_steps // per_epoch)
    return gen, rng, g0, opt, total_steps, epochs


def with_prox(loss, model, g0, mu):
    """loss plus FedProx's proximal term mu/2·||w - w0||² (loss itself
    without an anchor)."""
    if g0 is None:
        return loss
    return loss + mu / 2 * sum(((p - q) ** 2).sum() for p, q in zip(model.parameters(), g0))


def train_round(model, x, y, s, device, cancelled, progress, par=None):
    """Local training; yields progress messages and returns metrics through
    the generator's StopIteration value. With par (torchrun, ddp.py) this
    rank trains its part of every batch."""
    model.to(device)
    gen, rng, g0, opt, total_steps, epochs = round_setup(model, s, len(x))
    net = par.wrap(model, device) if par else model
    weight = torch.tensor(list(s.class_weights), dtype=torch.float32, device=device) if s.class_weights else None
    n, bs = len(x), s.batch_size
    metrics = {}
    last = time.monotonic()
    model.train()
    step = 0
    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(rng.permutation(n))
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, n, bs):
            if (par.stopped(cancelled) if par else cancelled()):
                return None
            if step == total_steps:
                break
            step += 1
            idx = order[start:start + bs]
            full = len(idx)
            if par:
                idx = par.part(idx)
            xb, yb = to_input(x[idx], device), y[idx].to(device)
            if s.augment:
                xb = cnn.augment(xb, gen)
            logits = net(xb)
            # Class weights scale each example's loss and the batch mean
            # divides by the batch size (not by the summed weights, as
            # PyTorch's weighted mean would): the Go trainer's convention.
            # Under torchrun: the whole batch's size, times the ranks that
            # DDP's gradient average divides by.
            per = F.cross_entropy(logits, yb, reduction="none")
            if weight is not None:
                per = per * weight[yb]
            loss = per.sum() / full * (par.world if par else 1)
            total = with_prox(loss, model, g0, s.prox_mu)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            lv = float(per.detach().sum())  # this rank's examples' summed loss
            if not math.isfinite(lv):
                raise BadRequest(grpc.StatusCode.ABORTED, f"loss became {lv} in epoch {epoch}; lower the learning rate")
            loss_sum += lv
            correct += int((logits.detach().argmax(1) == yb).sum())
            seen += len(idx)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                yield progress(f"epoch {epoch}/{epochs}: {seen}/{n} samples, loss {loss_sum / seen:.4f}", epoch,
                               (epoch - 1) * n + seen, loss_sum / seen)
        if par:
            loss_sum, correct, seen = par.sum(loss_sum, correct, seen)
            correct, seen = int(correct), int(seen)
        metrics[f"loss_epoch_{epoch}"] = loss_sum / seen
        metrics["loss"] = loss_sum / seen
        metrics["accuracy"] = correct / seen
        yield progress(f"epoch {epoch}/{epochs} done: loss {loss_sum / seen:.4f}, accuracy {correct / seen:.4f}", epoch,
                       (epoch - 1) * n + seen, loss_sum / seen)
    metrics["epochs"] = float(epochs)
    metrics["steps"] = float(step)
    return metrics


def seg_round(model, x, s, device, cancelled, progress):
    """Local training of a unet job on shards with masks: the loss of
    learning/unet.go (per-image mean BCE + 1 - soft Dice, mean over the
    batch), the epochs or local_steps, optimiser and FedProx of train_round.
    Augmentation moves images and masks together (cnn.augment); class
    weights and DP-SGD are refused before this runs."""
    model.to(device)
    gen, rng, g0, opt, total_steps, epochs = round_setup(model, s, len(x))
    n, bs = len(x), s.batch_size
    metrics, step, last = {}, 0, time.monotonic()
    model.train()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        loss_sum, dice_sum, seen = 0.0, 0.0, 0
        for start in range(0, n, bs):
            if cancelled():
                return None
            if step == total_steps:
                break
            step += 1
            idx = order[start:start + bs]
            xb, mb = x[idx].to(device), x.masks(idx).to(device)
            if s.augment:
                xb, mb = cnn.augment(xb, gen, mb)
            logit = model(xb)
            loss = unet.seg_loss(logit, mb).mean()
            total = with_prox(loss, model, g0, s.prox_mu)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise BadRequest(grpc.StatusCode.ABORTED, f"loss became {lv} in epoch {epoch}; lower the learning rate")
            with torch.no_grad():
                p = (logit.detach() > 0).float().flatten(1)
                t = mb.flatten(1)
                dice_sum += float(((2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).sum())
            loss_sum += lv * len(idx)
            seen += len(idx)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                yield progress(f"epoch {epoch}/{epochs}: {seen}/{n} images, loss {loss_sum / seen:.4f}", epoch,
                               (epoch - 1) * n + seen, loss_sum / seen)
        metrics[f"loss_epoch_{epoch}"] = loss_sum / seen
        metrics["loss"] = loss_sum / seen
        metrics["dice"] = dice_sum / seen
        yield progress(f"epoch {epoch}/{epochs} done: loss {loss_sum / seen:.4f}, dice {dice_sum / seen:.4f}", epoch,
                       (epoch - 1) * n + seen, loss_sum / seen)
    metrics["epochs"] = float(epochs)
    metrics["steps"] = float(step)
    return metrics


def check_dp(s):
    """The DP-SGD settings, or a BadRequest: a round that cannot give the
    privacy the agent accounts for never starts. The noise multiplier may be
    0 (no noise; the Go side's dp.SGD allows it too), never negative."""
    q, c, sigma = s.dp_sample_rate, s.dp_clip, s.dp_noise_multiplier
    if not (0 < q <= 1):
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"dp_sample_rate {q}: want 0 < rate <= 1")
    if not (c > 0 and math.isfinite(c)):
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"dp_clip {c}: want a positive finite number")
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"dp_noise_multiplier {sigma}: want a finite number >= 0")
    if s.dp_steps < 1:
        raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "dp_steps is 0: a DP-SGD round needs the number of steps to run")


def secure_generator(device):
    """A torch generator seeded from the OS's randomness, never from the job
    seed: the agent and the coordinator know that seed, and whoever knows
    the noise's seed can subtract the noise."""
    g = torch.Generator(device=device)
    g.manual_seed(secrets.randbits(63))
    return g


def per_example_grads(model, fmodel, xb, yb, weight):
    """Each example's gradient of its (class-weighted) loss, as a list of
    B x shape tensors in model.parameters() order, with the examples'
    losses and the number classified correctly. fmodel is functorch's
    functional copy of model (None: a loop over the examples)."""
    if fmodel is not None:
        params = list(model.parameters())

        def loss1(p, x1, y1, w1):
            logits = fmodel(p, x1.unsqueeze(0))
            loss = F.cross_entropy(logits, y1.unsqueeze(0)) * w1
            return loss, (loss.detach(), (logits.argmax(1) == y1).sum())

        # Indexing by a label inside vmap is data-dependent: weigh outside.
        wb = weight[yb] if weight is not None else torch.ones(len(yb), device=xb.device)
        grads, (losses, ok) = vmap(ft_grad(loss1, has_aux=True), in_dims=(None, 0, 0, 0))(
            tuple(p.detach() for p in params), xb, yb, wb)
        return list(grads), losses, int(ok.sum())
    grads = [torch.empty((len(xb),) + p.shape, device=p.device) for p in model.parameters()]
    losses, correct = torch.empty(len(xb)), 0
    for i in range(len(xb)):
        logits = model(xb[i:i + 1])
        loss = F.cross_entropy(logits, yb[i:i + 1])
        if weight is not None:
            loss = loss * weight[yb[i]]
        gs = torch.autograd.grad(loss, list(model.parameters()))
        for acc, g in zip(grads, gs):
            acc[i] = g
        losses[i] = float(loss.detach())
        correct += int(logits.detach().argmax(1)[0] == yb[i])
    return grads, losses, correct


def dp_round(model, x, y, s, device, cancelled, progress):
    """Record-level DP-SGD, the mechanism of the Go trainer (privacy/dp.SGD
    with learning's Poisson sampling): each of dp_steps steps draws every
    example independently with probability q, clips each drawn example's
    gradient to L2 norm C, sums them, adds N(0, (sigma*C)^2) to every
    coordinate (also when nobody was drawn), divides by the expected batch
    size q*N and takes an optimiser step; FedProx's term is added after, as
    it does not touch the records. Returns metrics through StopIteration."""
    q, clip, sigma, steps = s.dp_sample_rate, s.dp_clip, s.dp_noise_multiplier, s.dp_steps
    seed = s.seed % (1 << 63)
    aug_gen = torch.Generator().manual_seed(seed)  # augmentation is not secret
    sampler = secure_generator("cpu")
    noise_gen = secure_generator(device)
    model.to(device)
    params = list(model.parameters())
    fmodel = make_functional(model)[0] if ft_grad is not None else None
    g0 = [p.detach().clone() for p in params] if s.prox_mu > 0 else None
    if s.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=s.learning_rate, momentum=s.momentum)
    else:
        opt = torch.optim.Adam(params, lr=s.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    weight = torch.tensor(list(s.class_weights), dtype=torch.float32, device=device) if s.class_weights else None
    n = len(x)
    chunk = s.batch_size or 256  # per-example gradients held at once
    drawn, loss_sum, correct, last = 0, 0.0, 0, time.monotonic()
    model.train()
    for step in range(1, steps + 1):
        if cancelled():
            return None
        idx = torch.nonzero(torch.rand(n, generator=sampler, dtype=torch.float64) < q).flatten()
        total = [torch.zeros_like(p) for p in params]
        for start in range(0, len(idx), chunk):
            part = idx[start:start + chunk]
            xb, yb = to_input(x[part], device), y[part].to(device)
            if s.augment:
                xb = cnn.augment(xb, aug_gen)
            grads, losses, ok = per_example_grads(model, fmodel, xb, yb, weight)
            norms = torch.sqrt(sum(g.reshape(len(part), -1).pow(2).sum(1) for g in grads))
            # dp.ClipL2: scale only gradients longer than C, down to C.
            scale = torch.where(norms > clip, clip / norms, torch.ones_like(norms))
            for acc, g in zip(total, grads):
                acc.add_((g * scale.view((-1,) + (1,) * (g.dim() - 1))).sum(0))
            loss_sum += float(losses.sum())
            correct += ok
        drawn += len(idx)
        inv = 1.0 / (q * n)
        with torch.no_grad():
            for i, (p, acc) in enumerate(zip(params, total)):
                if sigma > 0:
                    acc.add_(torch.normal(0.0, sigma * clip, size=acc.shape, generator=noise_gen, device=device))
                acc.mul_(inv)
                if g0 is not None:
                    acc.add_(s.prox_mu * (p - g0[i]))
                p.grad = acc
        opt.step()
        opt.zero_grad(set_to_none=True)
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            yield progress(f"DP-SGD step {step}/{steps}", 1, drawn, 0.0)
    for p in params:
        if not torch.isfinite(p).all():
            raise BadRequest(grpc.StatusCode.ABORTED, "DP-SGD produced NaN or Inf weights; lower the learning rate")
    # The loss and accuracy are computed on the records and fall outside the
    # privacy accounting: the agent keeps them on the site.
    metrics = {"loss": loss_sum / max(drawn, 1), "accuracy": correct / max(drawn, 1), "dp_steps": float(steps)}
    yield progress(f"DP-SGD done: {steps} steps, {drawn} examples drawn", 1, drawn, 0.0)
    return metrics, steps, drawn


class Trainer:
    def __init__(self, device, data_root, cache, par=None):
        self.device = device
        self.data_root = os.path.abspath(data_root) if data_root else None
        self.cache = cache
        self.par = par  # torchrun: this is rank 0 of par.world (ddp.py)
        self.busy = threading.Lock()

    def info(self, request, context):
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return trainer_pb2.TrainerInfo(version=VERSION, device=self.device.type, device_name=name,
                                       manifest_versions=list(cnn.MANIFEST_VERSIONS) + list(unet.MANIFEST_VERSIONS) + list(graph.MANIFEST_VERSIONS)
                                       + list(custom.MANIFEST_VERSIONS),
                                       archs=list(cnn.ARCHS) + list(unet.ARCHS) + list(graph.ARCHS) + list(custom.ARCHS),
                                       custom_code=self.par is None)

    SHARD_CODES = {"invalid": grpc.StatusCode.INVALID_ARGUMENT, "missing": grpc.StatusCode.FAILED_PRECONDITION,
                   "full": grpc.StatusCode.RESOURCE_EXHAUSTED}

    def data_have(self, request, context):
        try:
            return trainer_pb2.DataHaveReply(missing=self.cache.missing(list(request.shard_ids)))
        except shards.ShardError as e:
            context.abort(self.SHARD_CODES[e.kind], str(e))

    def data_put(self, chunks, context):
        try:
            return trainer_pb2.ShardPutReply(bytes=self.cache.put(chunks))
        except shards.ShardError as e:
            log.warning("shard refused: %s", e)
            context.abort(self.SHARD_CODES[e.kind], str(e))

    def load(self, s, manifest):
        if s.shards and s.dataset:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "settings name both shards and a dataset")
        if not s.shards:
            if not s.dataset:
                raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "settings name no shards")
            return load_npz(self.resolve(s.dataset), s.split or "train", manifest)
        try:
            ss = shards.ShardSet(self.cache, list(s.shards), manifest["input"], manifest["classes"])
        except shards.ShardError as e:
            raise BadRequest(self.SHARD_CODES[e.kind], str(e))
        return ss, ss.y

    def resolve(self, dataset):
        if self.data_root is None:
            return dataset
        # A lexical check: the agent cannot climb out with "..", or name an
        # absolute path, while links the node's admin put inside the root
        # are followed.
        path = os.path.normpath(os.path.join(self.data_root, dataset))
        if os.path.isabs(dataset) or not path.startswith(self.data_root + os.sep):
            raise BadRequest(grpc.StatusCode.PERMISSION_DENIED, "dataset path leaves the trainer's data root")
        return path

    def train(self, requests, context):
        try:
            yield from self._train(requests, context)
        except BadRequest as e:
            log.warning("round rejected: %s", e)
            context.abort(e.code, str(e))
        except Exception as e:  # noqa: BLE001 - anything else still gets a status
            if isinstance(e, grpc.RpcError):
                raise
            log.exception("round failed")
            hint = "; the model or batch may not fit the device memory: lower the batch size" if "out of memory" in str(e) else ""
            context.abort(grpc.StatusCode.INTERNAL, f"training failed: {type(e).__name__}: {e}{hint}")

    def _train(self, requests, context):
        first = next(requests, None)
        if first is None or first.WhichOneof("msg") != "start":
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a TrainStart")
        st = first.start
        try:
            manifest = json.loads(st.manifest)
            seg = isinstance(manifest, dict) and manifest.get("arch") in unet.ARCHS
            if self.par and st.code:
                raise BadRequest(grpc.StatusCode.FAILED_PRECONDITION,
                                 "under torchrun this trainer does not run custom modules; run it as one process")
            model, params = build_model(manifest, bytes(st.code), st.code_sha256)
        except custom.CodeError as e:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"custom model: {e}")
        except (ValueError, cnn.ManifestError, unet.ManifestError) as e:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"layout manifest: {e}")
        total = manifest["total"]
        if st.total != total:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"start announces {st.total} weights, the manifest {total}")
        s = st.settings
        dp = s.dp_sample_rate != 0 or s.dp_clip != 0 or s.dp_noise_multiplier != 0 or s.dp_steps != 0
        if dp:
            check_dp(s)
        if (not dp and ((s.epochs < 1 and s.local_steps < 1) or s.batch_size < 1)) or s.optimizer not in ("sgd", "adam") or not s.learning_rate > 0:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                             "settings need epochs or local_steps >= 1 and batch_size >= 1 (without DP-SGD), optimizer sgd or adam and a positive learning rate")
        if seg and (dp or s.class_weights or not s.shards):
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                             "a unet round takes shards with masks and no DP-SGD or class weights (not supported by this trainer)")
        if s.class_weights and len(s.class_weights) != manifest["classes"]:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                             f"{len(s.class_weights)} class weights for {manifest['classes']} classes")
        vec = np.empty(total, dtype="<f4")
        got = 0
        for req in requests:
            if req.WhichOneof("msg") != "weights":
                raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "only weight chunks may follow TrainStart")
            ch = req.weights
            if ch.offset != got or len(ch.data) % 4 or got + len(ch.data) // 4 > total:
                raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                                 f"weight chunk at offset {ch.offset} with {len(ch.data)} bytes after {got} of {total} values")
            k = len(ch.data) // 4
            vec[got:got + k] = np.frombuffer(ch.data, dtype="<f4")
            got += k
            if ch.last:
                break
        if got != total:
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, f"received {got} of {total} weights")
        if not np.isfinite(vec).all():
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT, "global weights contain NaN or Inf")
        if seg:
            unet.load_flat(params, vec)
        else:
            cnn.load_flat(model, params, vec)
        x, y = self.load(s, manifest)
        if seg != bool(getattr(x, "has_masks", False)):
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                             "a unet job needs shards with masks" if seg else "shards with masks are for a unet job")
        if self.par and (dp or seg or not s.shards or s.batch_size < self.par.world):
            raise BadRequest(grpc.StatusCode.INVALID_ARGUMENT,
                             f"under torchrun ({self.par.world} processes) this trainer runs cnn rounds on shards with batches of at least "
                             f"{self.par.world}, without DP-SGD; run it as one process for DP-SGD or unet jobs")
        if dp:
            log.info("round start: job %s round %d, %d samples, DP-SGD %d steps at rate %g, device %s", st.job_id, st.round,
                     len(x), s.dp_steps, s.dp_sample_rate, self.device.type)
        else:
            log.info("round start: job %s round %d, %d samples, %d epochs, device %s", st.job_id, st.round, len(x), s.epochs,
                     self.device.type)
        started = time.monotonic()

        def progress(msg, epoch, done, loss):
            return trainer_pb2.TrainResponse(progress=trainer_pb2.TrainProgress(
                message=msg, epoch=epoch, samples_done=done, loss=loss))

        # One round at a time owns the device; a second waits briefly (the
        # previous round may be streaming its result) and is then refused.
        if not self.busy.acquire(timeout=BUSY_WAIT_S):
            raise BadRequest(grpc.StatusCode.UNAVAILABLE, "trainer is busy with another round; retry later")
        try:
            cancelled = lambda: not context.is_active()  # noqa: E731
            steps = drawn = 0
            if dp:
                yield progress(f"training {len(x)} samples for {s.dp_steps} DP-SGD steps on {self.device.type}", 0, 0, 0.0)
                out = yield from dp_round(model, x, y, s, self.device, cancelled, progress)
                metrics = None
                if out is not None:
                    metrics, steps, drawn = out
            else:
                what = f"{s.local_steps} steps" if s.local_steps > 0 else f"{s.epochs} epochs"
                yield progress(f"training {len(x)} samples for {what} on {self.device.type}", 0, 0, 0.0)
                if seg:
                    metrics = yield from seg_round(model, x, s, self.device, cancelled, progress)
                else:
                    if self.par:
                        self.par.share(("round", bytes(st.manifest), s.SerializeToString(), vec))
                    metrics = yield from train_round(model, x, y, s, self.device, cancelled, progress, self.par)
            model.cpu()
        finally:
            self.busy.release()
        if metrics is None:
            log.info("round cancelled: job %s round %d", st.job_id, st.round)
            return
        metrics["seconds"] = time.monotonic() - started
        out = (unet.flatten(params) if seg else cnn.flatten(model, params)).astype("<f4")
        if not np.isfinite(out).all():
            raise BadRequest(grpc.StatusCode.ABORTED, "training produced NaN or Inf weights; lower the learning rate")
        for off in range(0, total, CHUNK):
            end = min(off + CHUNK, total)
            yield trainer_pb2.TrainResponse(weights=trainer_pb2.WeightChunk(
                offset=off, data=out[off:end].tobytes(), last=end == total))
        log.info("round done: job %s round %d, loss %.4f, %.1f s", st.job_id, st.round, metrics["loss"], metrics["seconds"])
        yield trainer_pb2.TrainResponse(result=trainer_pb2.TrainResult(
            samples=len(x), metrics=metrics, device=self.device.type, total=total, steps=steps, drawn=drawn))


def handler(t):
    return grpc.method_handlers_generic_handler(SERVICE, {
        "Info": grpc.unary_unary_rpc_method_handler(
            t.info, request_deserializer=trainer_pb2.TrainerInfoRequest.FromString,
            response_serializer=trainer_pb2.TrainerInfo.SerializeToString),
        "Train": grpc.stream_stream_rpc_method_handler(
            t.train, request_deserializer=trainer_pb2.TrainRequest.FromString,
            response_serializer=trainer_pb2.TrainResponse.SerializeToString),
        "DataHave": grpc.unary_unary_rpc_method_handler(
            t.data_have, request_deserializer=trainer_pb2.DataHaveRequest.FromString,
            response_serializer=trainer_pb2.DataHaveReply.SerializeToString),
        "DataPut": grpc.stream_unary_rpc_method_handler(
            t.data_put, request_deserializer=trainer_pb2.ShardChunk.FromString,
            response_serializer=trainer_pb2.ShardPutReply.SerializeToString),
    })


def is_local(listen):
    if listen.startswith("unix:"):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker(device, cache, par):
    """Ranks other than 0 under torchrun: train each round rank 0 shares."""
    log.info("rank %d of %d waiting for rounds on %s", par.rank, par.world, device)
    while True:
        msg = par.share(None)
        if msg is None:
            return
        _, manifest_json, settings, vec = msg
        s = trainer_pb2.TrainSettings.FromString(settings)
        manifest = json.loads(manifest_json)
        model, params = build_model(manifest)
        cnn.load_flat(model, params, vec)
        x = shards.ShardSet(cache, list(s.shards), manifest["input"], manifest["classes"])
        rnd = train_round(model, x, x.y, s, device, lambda: False, lambda *a: None, par)
        for _ in rnd:
            pass


def serve(args):
    par = ddp.setup(args.device)
    device = pick_device(args.device)
    if par and device.type == "cuda":
        device = torch.device("cuda", par.local_rank)
    if args.threads:
        torch.set_num_threads(args.threads)
    if par and par.rank != 0:
        worker(device, shards.Cache(args.shard_cache, args.cache_bytes), par)
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if args.cache_bytes < shards.MAX_SHARD_BYTES:
        raise SystemExit(f"--cache-bytes {args.cache_bytes}: want at least one shard's bound, {shards.MAX_SHARD_BYTES}")
    cache = shards.Cache(args.shard_cache, args.cache_bytes)
    server.add_generic_rpc_handlers((handler(Trainer(device, args.data_root, cache, par)),))
    if args.tls_cert:
        with open(args.tls_key, "rb") as f:
            key = f.read()
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        ca = None
        if args.tls_client_ca:
            with open(args.tls_client_ca, "rb") as f:
                ca = f.read()
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
        port = server.add_secure_port(args.listen, creds)
    elif is_local(args.listen):
        port = server.add_insecure_port(args.listen)
    else:
        raise SystemExit(f"refusing to listen on {args.listen} without TLS: pass --tls-cert and --tls-key, "
                         "or listen on a loopback address or a unix socket")
    if port == 0 and not args.listen.startswith("unix:"):
        raise SystemExit(f"cannot listen on {args.listen}")
    server.start()
    addr = args.listen if args.listen.startswith("unix:") else f"{args.listen.rsplit(':', 1)[0]}:{port}"
    print(json.dumps({"listening": addr, "device": device.type, "version": VERSION}), flush=True)
    log.info("trainer %s listening on %s, device %s", VERSION, addr, device.type)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("stopping: finishing the round in progress for up to %d s", args.grace)
    server.stop(args.grace).wait()
    if par:
        par.share(None)  # the other ranks exit


def predict(args):
    """Softmax probabilities of a model on a dataset split, as JSON, so that
    the Go and PyTorch models can be compared on the same weights."""
    with open(args.manifest) as f:
        manifest = json.load(f)
    model, params = build_model(manifest)
    vec = np.fromfile(args.weights, dtype="<f4")
    if len(vec) != manifest["total"]:
        raise SystemExit(f"{args.weights} holds {len(vec)} values, the manifest {manifest['total']}")
    cnn.load_flat(model, params, vec)
    x, _ = load_npz(args.npz, args.split, manifest)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(to_input(x, "cpu")), dim=1).double().numpy()
    json.dump({"probs": probs.tolist()}, sys.stdout)
    sys.stdout.write("\n")


def layout(args):
    """Print a job's model section for a custom module: the pinned hash and
    model.layout, the parameters in named_parameters() order."""
    try:
        model, n = custom.layout_command(args.code, args.channels, args.height, args.width, args.classes)
    except (OSError, custom.CodeError) as e:
        raise SystemExit(f"{args.code}: {e}")
    head = json.dumps({k: v for k, v in model.items() if k != "layout"})[:-1]
    entries = ",\n  ".join(json.dumps(e) for e in model["layout"])
    print(f'{head},\n "layout": [\n  {entries}]}}')
    print(f"{args.code}: {n} parameters in {len(model['layout'])} tensors", file=sys.stderr)


def main():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("serve", help="serve concord.v1.Trainer")
    sp.add_argument("--listen", default="127.0.0.1:50061", help="host:port (port 0 picks one) or unix:///path")
    sp.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    sp.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    sp.add_argument("--data-root", default="", help=".npz datasets (benchmarks) must lie under this folder")
    sp.add_argument("--shard-cache", default=os.path.join(os.path.expanduser("~"), ".cache", "concord-trainer", "shards"),
                    help="folder of the shards the agent sends")
    sp.add_argument("--cache-bytes", type=int, default=16 << 30, help="bound of the shard cache in bytes (LRU eviction)")
    sp.add_argument("--tls-cert", default="")
    sp.add_argument("--tls-key", default="")
    sp.add_argument("--tls-client-ca", default="", help="require client certificates signed by this CA")
    sp.add_argument("--grace", type=int, default=30, help="seconds to finish a round on SIGTERM")
    pp = sub.add_parser("predict", help="print softmax probabilities as JSON")
    pp.add_argument("--manifest", required=True)
    pp.add_argument("--weights", required=True, help="flat little-endian float32 file")
    pp.add_argument("--npz", required=True)
    pp.add_argument("--split", default="test")
    lp = sub.add_parser("layout", help="print the job's model section for a custom module (JSON, which is YAML)")
    lp.add_argument("--code", required=True, help="the module: one .py file defining build(channels, height, width, classes)")
    for name in ("channels", "height", "width", "classes"):
        lp.add_argument(f"--{name}", type=int, required=True)
    args = ap.parse_args()
    if args.cmd == "serve":
        if bool(args.tls_cert) != bool(args.tls_key):
            raise SystemExit("--tls-cert and --tls-key go together")
        serve(args)
    elif args.cmd == "layout":
        layout(args)
    else:
        try:
            predict(args)
        except (BadRequest, cnn.ManifestError, custom.CodeError) as e:
            raise SystemExit(str(e))


if __name__ == "__main__":
    main()
