"""The "unet" architecture of learning/unet.go (layout concord.unet/1) in
PyTorch, so that a GPU site trains federated segmentation jobs with the same
flat weight vector as the Go trainer.

Design choices:
- The network is the Go one exactly: each stage is two 3x3 convolutions with
  padding 1 and ReLU, no normalisation; 2x2 max pooling; the decoder's 1x1
  projection runs before nearest-neighbour x2 upsampling (the same values as
  after it, which is what Go computes); the concatenation puts the upsampled
  path first and the skip second; the head is a 1x1 convolution to one logit.
- Parameters are named as in the Go layout ("enc1.conv1.weight", ...), and
  the manifest the agent sends is checked entry by entry (name, shape, offset,
  size) against the layout this module derives; any difference is refused.
- The loss per image is the mean pixel BCE plus 1 - soft Dice (smoothing 1)
  over that image's pixels; a batch takes the mean over its images, as the
  Go trainer divides the summed gradients by the batch size.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MANIFEST_VERSIONS = ("concord.unet/1",)
ARCHS = ("unet",)


def convs(c, b):
    """The convolutions in layout order: name, cin, cout, kernel."""
    return [("enc1.conv1", c, b, 3), ("enc1.conv2", b, b, 3),
            ("enc2.conv1", b, 2 * b, 3), ("enc2.conv2", 2 * b, 2 * b, 3),
            ("mid.conv1", 2 * b, 4 * b, 3), ("mid.conv2", 4 * b, 4 * b, 3),
            ("up2.proj", 4 * b, 2 * b, 1),
            ("dec2.conv1", 4 * b, 2 * b, 3), ("dec2.conv2", 2 * b, 2 * b, 3),
            ("up1.proj", 2 * b, b, 1),
            ("dec1.conv1", 2 * b, b, 3), ("dec1.conv2", b, b, 3),
            ("head.conv", b, 1, 1)]


def layout(c, b):
    """[(name, shape, offset, size)] in the Go layout's canonical order."""
    out, off = [], 0
    for name, cin, cout, k in convs(c, b):
        wn = cout * cin * k * k
        out.append((name + ".weight", [cout, cin, k, k], off, wn))
        out.append((name + ".bias", [cout], off + wn, cout))
        off += wn + cout
    return out


class UNet(nn.Module):
    def __init__(self, c, b):
        super().__init__()
        self.convs = nn.ModuleDict()
        for name, cin, cout, k in convs(c, b):
            self.convs[name.replace(".", "_")] = nn.Conv2d(cin, cout, k, padding=k // 2)

    def _c(self, name, x, relu=True):
        y = self.convs[name.replace(".", "_")](x)
        return F.relu(y) if relu else y

    def forward(self, x):
        c = self._c
        e1 = c("enc1.conv2", c("enc1.conv1", x))
        e2 = c("enc2.conv2", c("enc2.conv1", F.max_pool2d(e1, 2)))
        m = c("mid.conv2", c("mid.conv1", F.max_pool2d(e2, 2)))
        u2 = F.interpolate(c("up2.proj", m, relu=False), scale_factor=2, mode="nearest")
        d2 = c("dec2.conv2", c("dec2.conv1", torch.cat([u2, e2], 1)))
        u1 = F.interpolate(c("up1.proj", d2, relu=False), scale_factor=2, mode="nearest")
        d1 = c("dec1.conv2", c("dec1.conv1", torch.cat([u1, e1], 1)))
        return c("head.conv", d1, relu=False)[:, 0]


class ManifestError(ValueError):
    pass


def build(manifest):
    """The model and its parameters in layout order, from a concord.unet/1
    manifest; refuses a manifest that does not match the Go layout."""
    if manifest.get("version") not in MANIFEST_VERSIONS:
        raise ManifestError(f"manifest version {manifest.get('version')!r} is not supported; want {MANIFEST_VERSIONS[0]}")
    inp, b = manifest.get("input"), manifest.get("width")
    if not (isinstance(inp, list) and len(inp) == 3 and all(isinstance(v, int) for v in inp)):
        raise ManifestError(f"input {inp!r}, want [C, H, W]")
    c, h, w = inp
    if c not in (1, 3) or not (16 <= h <= 512 and 16 <= w <= 512) or h % 4 or w % 4:
        raise ManifestError(f"unet input {c}x{h}x{w}: want 1 or 3 channels, sides 16..512 divisible by 4")
    if not isinstance(b, int) or not 1 <= b <= 128 or manifest.get("classes") != 1:
        raise ManifestError(f"unet width {b!r} (want 1..128) and classes {manifest.get('classes')!r} (want 1)")
    want = layout(c, b)
    got = manifest.get("params") or []
    if len(got) != len(want):
        raise ManifestError(f"{len(got)} parameters, the unet layout has {len(want)}")
    for e, (name, shape, off, size) in zip(got, want):
        if (e.get("name"), list(e.get("shape", [])), e.get("offset"), e.get("size")) != (name, shape, off, size):
            raise ManifestError(f"parameter {e.get('name')!r} does not match layout entry {name} {shape} at {off}")
    total = want[-1][2] + want[-1][3]
    if manifest.get("total") != total:
        raise ManifestError(f"total {manifest.get('total')!r}, the layout has {total}")
    model = UNet(c, b)
    mods = dict(model.convs.items())
    params = []
    for name, _, _, _ in want:
        mod, kind = name.rsplit(".", 1)
        params.append(getattr(mods[mod.replace(".", "_")], kind))
    return model, params


def load_flat(params, vec):
    """Copies the flat float32 vector (numpy) into params, in layout order."""
    off = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(torch.from_numpy(vec[off:off + n].copy()).view_as(p))
            off += n


def flatten(params):
    return torch.cat([p.detach().reshape(-1).cpu() for p in params]).numpy()


def seg_loss(logit, mask):
    """Per-image mean BCE + 1 - soft Dice (smoothing 1), N values."""
    bce = F.binary_cross_entropy_with_logits(logit, mask, reduction="none").flatten(1).mean(1)
    p = torch.sigmoid(logit).flatten(1)
    t = mask.flatten(1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + 1 - dice
