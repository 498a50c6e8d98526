"""The Concord "cnn" classifier in PyTorch, built from a layout manifest.

This mirrors the Go model in package learning parameter for parameter: the
names, shapes and order below are the shared weight-layout contract, so a
flat float32 vector from one side loads into the other. Manifest version
"concord.cnn/2" (the default) has a GroupNorm after each 3x3 convolution,
over norm_groups(channels) groups with eps 1e-5, before its ReLU and before
a skip or shortcut is added; "concord.cnn/1" is the same network without
normalisation.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MANIFEST_VERSIONS = ("concord.cnn/2", "concord.cnn/1")
NORM_VERSION = "concord.cnn/2"


def norm_groups(c):
    """GroupNorm groups of a c-channel layer: the largest divisor of c that is
    at most min(8, c // 2), or 1 (the Go side's normGroups)."""
    g = min(8, c // 2)
    while g > 1 and c % g:
        g -= 1
    return max(g, 1)


def _norm(c, on):
    return nn.GroupNorm(norm_groups(c), c, eps=1e-5) if on else None
ARCHS = ("cnn",)


class ManifestError(ValueError):
    """The manifest does not describe a model this trainer can build."""


class _Stem(nn.Module):
    def __init__(self, c, w, norm):
        super().__init__()
        self.conv = nn.Conv2d(c, w, 3, padding=1)
        self.norm = _norm(w, norm)


class _Block(nn.Module):
    def __init__(self, cin, cout, shortcut, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm1 = _norm(cout, norm)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2 = _norm(cout, norm)
        if shortcut:
            self.shortcut = nn.Conv2d(cin, cout, 1)


def _n(norm, x):
    return norm(x) if norm is not None else x


class _Head(nn.Module):
    def __init__(self, w, k):
        super().__init__()
        self.fc1 = nn.Linear(2 * w, 4 * w)
        self.fc2 = nn.Linear(4 * w, k)


class CNN(nn.Module):
    """stem -> residual block (w) -> pool -> residual block (2w, 1x1
    projection) -> pool -> global average pool -> fc(4w) -> fc(K) logits,
    with GroupNorm after each 3x3 convolution when norm is set."""

    def __init__(self, channels, width, classes, norm=True):
        super().__init__()
        self.stem = _Stem(channels, width, norm)
        self.block1 = _Block(width, width, shortcut=False, norm=norm)
        self.block2 = _Block(width, 2 * width, shortcut=True, norm=norm)
        self.head = _Head(width, classes)

    def forward(self, x):
        s, b1, b2 = self.stem, self.block1, self.block2
        x = F.relu(_n(s.norm, s.conv(x)))
        y = F.relu(_n(b1.norm1, b1.conv1(x)))
        x = F.relu(x + _n(b1.norm2, b1.conv2(y)))
        x = F.max_pool2d(x, 2)
        y = F.relu(_n(b2.norm1, b2.conv1(x)))
        x = F.relu(b2.shortcut(x) + _n(b2.norm2, b2.conv2(y)))
        x = F.max_pool2d(x, 2)
        x = x.mean(dim=(2, 3))
        x = F.relu(self.head.fc1(x))
        return self.head.fc2(x)


def layout(channels, width, classes, norm=True):
    """The contract's parameter list: [(name, shape)] in vector order."""
    w, c, k = width, channels, classes

    def conv(name, norm_name, cout, cin, ks):
        out = [(name + ".weight", [cout, cin, ks, ks]), (name + ".bias", [cout])]
        if norm and norm_name:
            out += [(norm_name + ".weight", [cout]), (norm_name + ".bias", [cout])]
        return out

    return (conv("stem.conv", "stem.norm", w, c, 3)
            + conv("block1.conv1", "block1.norm1", w, w, 3)
            + conv("block1.conv2", "block1.norm2", w, w, 3)
            + conv("block2.conv1", "block2.norm1", 2 * w, w, 3)
            + conv("block2.conv2", "block2.norm2", 2 * w, 2 * w, 3)
            + conv("block2.shortcut", None, 2 * w, w, 1)
            + [("head.fc1.weight", [4 * w, 2 * w]), ("head.fc1.bias", [4 * w]),
               ("head.fc2.weight", [k, 4 * w]), ("head.fc2.bias", [k])])


def manifest_for(channels, height, width_px, classes, width=16, norm=True):
    """The manifest dict the Go side produces for the same model."""
    params, off = [], 0
    for name, shape in layout(channels, width, classes, norm):
        size = int(np.prod(shape))
        params.append({"name": name, "shape": shape, "offset": off, "size": size})
        off += size
    return {"version": NORM_VERSION if norm else "concord.cnn/1", "arch": "cnn", "input": [channels, height, width_px],
            "classes": classes, "width": width, "params": params, "total": off}


def build(manifest):
    """Build the model a manifest describes, checking every entry.

    Returns (model, params) where params is the manifest's list of
    (name, shape, offset, size)."""
    if not isinstance(manifest, dict):
        raise ManifestError("manifest is not a JSON object")
    version = manifest.get("version")
    if version not in MANIFEST_VERSIONS:
        raise ManifestError(f"manifest version {version!r} is not supported; this trainer builds {', '.join(MANIFEST_VERSIONS)}")
    if manifest.get("arch") not in ARCHS:
        raise ManifestError(f"arch {manifest.get('arch')!r} is not supported; this trainer builds {', '.join(ARCHS)}")
    inp = manifest.get("input")
    if not (isinstance(inp, list) and len(inp) == 3 and all(isinstance(v, int) for v in inp)):
        raise ManifestError(f"manifest input {inp!r} is not [channels, height, width]")
    c, h, w_px = inp
    if c not in (1, 3) or h < 4 or w_px < 4 or h % 4 or w_px % 4:
        raise ManifestError(f"manifest input {inp}: want 1 or 3 channels and sides divisible by 4")
    k, width = manifest.get("classes"), manifest.get("width")
    if not (isinstance(k, int) and k >= 2 and isinstance(width, int) and 1 <= width <= 4096):
        raise ManifestError(f"manifest classes {k!r} / width {width!r}: want classes >= 2 and 1 <= width <= 4096")
    norm = version == NORM_VERSION
    want = layout(c, width, k, norm)
    got = manifest.get("params")
    if not isinstance(got, list) or len(got) != len(want):
        raise ManifestError(f"manifest lists {len(got) if isinstance(got, list) else 'no'} parameters, the cnn has {len(want)}")
    params, off = [], 0
    for entry, (name, shape) in zip(got, want):
        if not isinstance(entry, dict) or entry.get("name") != name or entry.get("shape") != shape:
            raise ManifestError(f"manifest entry {entry.get('name') if isinstance(entry, dict) else entry!r} does not match {name} {shape}")
        size = int(np.prod(shape))
        if entry.get("offset") != off or entry.get("size") != size:
            raise ManifestError(f"manifest entry {name}: offset/size {entry.get('offset')}/{entry.get('size')}, want {off}/{size}")
        params.append((name, shape, off, size))
        off += size
    if manifest.get("total") != off:
        raise ManifestError(f"manifest total {manifest.get('total')} but parameters add up to {off}")
    return CNN(c, width, k, norm), params


def load_flat(model, params, vec):
    """Copy the flat float32 vector into the model's parameters."""
    state = dict(model.named_parameters())
    with torch.no_grad():
        for name, shape, off, size in params:
            state[name].copy_(torch.from_numpy(np.ascontiguousarray(vec[off:off + size])).view(*shape))


def flatten(model, params):
    """The model's parameters as one float32 numpy vector in manifest order."""
    state = dict(model.named_parameters())
    return torch.cat([state[name].detach().reshape(-1).float().cpu() for name, _, _, _ in params]).numpy()


def augment(x, gen, mask=None):
    """Random flip, rotation up to 10 degrees, shift up to 1/14 of the side
    and intensity jitter (gain 0.9..1.1, offset +-0.1), per sample, the same
    recipe as the Go trainer (not the same random draws). With mask (N x H x W)
    it returns the images and the masks moved the same way (bilinear, no
    intensity jitter: learning/augment.go's masks)."""
    n, _, h, w = x.shape
    u = torch.rand(n, 6, generator=gen).to(x.device)
    angle = (u[:, 0] * 2 - 1) * (10 * np.pi / 180)
    flip = torch.where(u[:, 1] < 0.5, -1.0, 1.0)
    tx = (u[:, 2] * 2 - 1) * (max(h, w) / 14) * 2 / max(w - 1, 1)
    ty = (u[:, 3] * 2 - 1) * (max(h, w) / 14) * 2 / max(h - 1, 1)
    gain = 0.9 + 0.2 * u[:, 4]
    offset = (u[:, 5] * 2 - 1) * 0.1
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * flip, sin * flip, -tx * flip], 1),
                         torch.stack([-sin, cos, -ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    out = out * gain.view(n, 1, 1, 1) + offset.view(n, 1, 1, 1)
    if mask is None:
        return out
    m = F.grid_sample(mask.unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out, m.squeeze(1)
