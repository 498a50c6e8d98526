"""Custom models (layout concord.custom/1, arch "custom"): a consortium's
PyTorch module, shipped with the job and pinned by its SHA-256.

The module is one Python file that defines

    def build(channels, height, width, classes) -> torch.nn.Module

returning a classifier whose forward maps N x channels x height x width
inputs to N x classes logits. The trainer imports it only for a TrainStart
that carries its bytes and pinned hash, which the site agent sends only once
the hospital approved that exact hash (`site-agent models approve-code`);
this file re-checks the hash before the import.

Contract with the layout manifest:
  - parameters: named_parameters() in its own order is the manifest's
    order; names and shapes must match the job's model.layout exactly
    (`trainer.py layout` prints it);
  - no buffers: BatchNorm's running statistics and other buffers would be
    state computed from patients' data that FedAvg does not carry (and
    secure aggregation cannot inspect); use GroupNorm or LayerNorm;
  - a forward pass of one zero input must give [1, classes].

What this file cannot do: sandbox the module. Importing it runs its code
with the trainer's privileges; the hash approval is the control, and the
trainer's service unit (concord-trainer.service) bounds what that code can
reach (see deploy/trainer/README.md, "Custom models").
"""
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

MANIFEST_VERSIONS = ("concord.custom/1",)
ARCHS = ("custom",)
MAX_CODE_BYTES = 256 << 10
MAX_PARAMS = 1000


class CodeError(Exception):
    """The module, its hash or its parameters do not fit the job."""


def sha256_hex(code):
    return hashlib.sha256(code).hexdigest()


def load(code, sha256):
    """Import the module whose bytes are code after checking they hash to
    sha256. The file is written into a fresh private directory (0700),
    imported under a name of its own and the directory removed."""
    if not isinstance(code, (bytes, bytearray)) or not code:
        raise CodeError("the job carries no module code")
    if len(code) > MAX_CODE_BYTES:
        raise CodeError(f"module code is {len(code)} bytes, over {MAX_CODE_BYTES}")
    got = sha256_hex(bytes(code))
    if got != sha256:
        raise CodeError(f"module code hashes to {got}, the job pins {sha256!r}: refusing to import it")
    d = tempfile.mkdtemp(prefix="concord-custom-")
    try:
        os.chmod(d, 0o700)
        path = os.path.join(d, f"custom_{got[:16]}.py")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(code)
        name = f"concord_custom_{got[:16]}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as e:  # noqa: BLE001 - the consortium's code may raise anything
            raise CodeError(f"importing the module failed: {type(e).__name__}: {e}")
        sys.modules.pop(name, None)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if not callable(getattr(mod, "build", None)):
        raise CodeError("the module defines no build(channels, height, width, classes)")
    return mod


def instantiate(mod, channels, height, width, classes):
    """The module's network, checked for buffers and its output shape."""
    try:
        net = mod.build(channels, height, width, classes)
    except Exception as e:  # noqa: BLE001
        raise CodeError(f"build({channels}, {height}, {width}, {classes}) failed: {type(e).__name__}: {e}")
    if not isinstance(net, torch.nn.Module):
        raise CodeError(f"build returned {type(net).__name__}, not a torch.nn.Module")
    bufs = [n for n, _ in net.named_buffers()]
    if bufs:
        raise CodeError(f"the module has buffers {bufs[:5]}: state such as BatchNorm running statistics is computed from "
                        "patients' data and is not federated; use GroupNorm or LayerNorm (track_running_stats=False)")
    net.eval()
    with torch.no_grad():
        try:
            out = net(torch.zeros(1, channels, height, width))
        except Exception as e:  # noqa: BLE001
            raise CodeError(f"a forward pass of one {channels}x{height}x{width} input failed: {type(e).__name__}: {e}")
    if not isinstance(out, torch.Tensor) or list(out.shape) != [1, classes]:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CodeError(f"the network maps one input to {shape}, want [1, {classes}] logits")
    net.train()
    return net


def layout_of(net):
    """[{"name", "shape"}] in named_parameters() order: model.layout."""
    return [{"name": n, "shape": list(p.shape)} for n, p in net.named_parameters()]


def build(manifest, code, sha256):
    """Build the module's network for a concord.custom/1 manifest and check
    its parameters against it. Returns (model, params) like cnn.build:
    params is the manifest's list of (name, shape, offset, size)."""
    if not isinstance(manifest, dict) or manifest.get("version") not in MANIFEST_VERSIONS or manifest.get("arch") not in ARCHS:
        raise CodeError("the manifest is not a concord.custom/1 manifest")
    if manifest.get("code") != sha256:
        raise CodeError(f"the manifest is for module {manifest.get('code')!r}, the round carries {sha256!r}")
    inp, classes = manifest.get("input"), manifest.get("classes")
    if not (isinstance(inp, list) and len(inp) == 3 and all(isinstance(v, int) and v >= 1 for v in inp)):
        raise CodeError(f"manifest input {inp!r} is not [channels, height, width]")
    if not isinstance(classes, int) or classes < 2:
        raise CodeError(f"manifest classes {classes!r}: want an integer >= 2")
    net = instantiate(load(code, sha256), inp[0], inp[1], inp[2], classes)
    have = layout_of(net)
    want = manifest.get("params")
    if not isinstance(want, list) or not 1 <= len(want) <= MAX_PARAMS:
        raise CodeError(f"manifest params: want a list of 1..{MAX_PARAMS} entries")
    if len(have) != len(want):
        raise CodeError(f"the module has {len(have)} parameter tensors, the job's model.layout {len(want)}")
    params, off = [], 0
    for i, (h, w) in enumerate(zip(have, want)):
        if not isinstance(w, dict) or w.get("name") != h["name"] or w.get("shape") != h["shape"]:
            got = (w.get("name"), w.get("shape")) if isinstance(w, dict) else w
            raise CodeError(f"parameter {i + 1}: the module has {h['name']} {h['shape']}, the job's model.layout {got}")
        size = int(np.prod(h["shape"]))
        if w.get("offset") != off or w.get("size") != size:
            raise CodeError(f"parameter {h['name']}: manifest offset {w.get('offset')} size {w.get('size')}, want {off} and {size}")
        params.append((h["name"], h["shape"], off, size))
        off += size
    if manifest.get("total") != off:
        raise CodeError(f"manifest total {manifest.get('total')}, the parameters add up to {off}")
    return net, params


def layout_command(path, channels, height, width, classes):
    """What `trainer.py layout` prints: a job's whole model section (JSON is
    YAML, so it pastes after "model: "), and the parameter count."""
    with open(path, "rb") as f:
        code = f.read(MAX_CODE_BYTES + 1)
    sha = sha256_hex(code)
    net = instantiate(load(code, sha), channels, height, width, classes)
    model = {"arch": "custom", "code": {"file": os.path.basename(path), "sha256": sha}, "channels": channels,
             "height": height, "width": width, "classes": classes, "layout": layout_of(net)}
    return model, sum(p.numel() for p in net.parameters())
