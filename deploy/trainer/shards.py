"""The trainer's shard cache: the site's training data as the agent's
pipeline produced it (extrainer/shards.go writes the shards).

A shard file is "CONCORDSHARD1\\n", a little-endian uint32 header length, a
JSON header {"n","c","h","w"} (and "masks": 1 for segmentation data), zero
padding to a multiple of 64 bytes, then n*c*h*w little-endian float32 pixels
(already standardised: no scaling here), n int32 labels (0 for
segmentation) and, with masks, n*h*w bytes of 0 or 1. Its id is the lowercase hex SHA-256 of the file.

The cache is a folder of <id>.shard files bounded in bytes: storing a shard
evicts the least recently used ones (by mtime, touched on every use) until it
fits. A shard is written to a temporary file, its size bounded as it arrives
and its hash checked before it is renamed into place, so a cut or altered
transfer never becomes visible.

ShardSet opens a round's shards as memory maps: training indexes examples
across all shards (a global permutation, or DP-SGD's Poisson draws over the
whole dataset) and reads only the drawn rows, so a site's data never needs
to fit in memory; the labels (4 bytes an example) are held in memory.
"""
import hashlib
import json
import os
import re
import struct
import tempfile
import threading

import numpy as np
import torch

MAGIC = b"CONCORDSHARD1\n"
ALIGN = 64
MAX_SHARD_BYTES = 256 << 20  # as extrainer.MaxShardBytes
MAX_SHARDS = 4096  # as extrainer.MaxShards
ID_RE = re.compile(r"^[0-9a-f]{64}$")


class ShardError(Exception):
    """A shard or cache problem; kind is "invalid", "missing" or "full"."""

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def check_id(sid):
    if not ID_RE.match(sid):
        raise ShardError("invalid", f"shard id {sid[:80]!r} is not a lowercase hex SHA-256")


class Cache:
    def __init__(self, root, max_bytes):
        self.root = os.path.abspath(root)
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        os.makedirs(self.root, exist_ok=True)

    def path(self, sid):
        check_id(sid)
        return os.path.join(self.root, sid + ".shard")

    def missing(self, ids):
        if len(ids) > MAX_SHARDS:
            raise ShardError("invalid", f"{len(ids)} shards asked about, over the bound of {MAX_SHARDS}")
        missing = []
        for sid in ids:
            try:
                os.utime(self.path(sid))  # held: recently used, so evicted last
            except FileNotFoundError:
                missing.append(sid)
        return missing

    def _evict(self, need):
        """Removes least recently used shards until need more bytes fit."""
        files = []
        for name in os.listdir(self.root):
            if name.endswith(".shard"):
                st = os.stat(os.path.join(self.root, name))
                files.append((st.st_mtime, st.st_size, name))
        used = sum(f[1] for f in files)
        for _, size, name in sorted(files):
            if used + need <= self.max_bytes:
                break
            os.remove(os.path.join(self.root, name))
            used -= size
        if used + need > self.max_bytes:
            raise ShardError("full", f"a shard of {need} bytes does not fit the cache of {self.max_bytes} bytes")

    def put(self, chunks):
        """Stores the shard the chunks carry (ShardChunk messages in order);
        returns its size."""
        first = next(chunks, None)
        if first is None or not first.shard_id:
            raise ShardError("invalid", "the first shard chunk must name the shard")
        sid, size = first.shard_id, first.size
        dest = self.path(sid)
        if not 0 < size <= MAX_SHARD_BYTES:
            raise ShardError("full", f"shard of {size} bytes; the bound is {MAX_SHARD_BYTES}")
        h, got = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                ch, done = first, False
                while ch is not None:
                    if ch.offset != got or got + len(ch.data) > size:
                        raise ShardError("invalid", f"shard chunk at offset {ch.offset} with {len(ch.data)} bytes after {got} of {size}")
                    f.write(ch.data)
                    h.update(ch.data)
                    got += len(ch.data)
                    if ch.last:
                        done = True
                        break
                    ch = next(chunks, None)
            if not done or got != size:
                raise ShardError("invalid", f"shard ended after {got} of {size} bytes")
            if h.hexdigest() != sid:
                raise ShardError("invalid", f"shard {sid[:12]}: its bytes hash to {h.hexdigest()[:12]}, not to its id")
            header(tmp)  # a well-formed shard, or refused now rather than in training
            with self.lock:
                self._evict(size)
                os.replace(tmp, dest)
            tmp = None
        finally:
            if tmp is not None:
                os.remove(tmp)
        return size


def header(path):
    """(n, c, h, w, data offset, masks) of a shard file, checking its layout."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 4)
        if head[:len(MAGIC)] != MAGIC or len(head) != len(MAGIC) + 4:
            raise ShardError("invalid", "not a Concord shard (bad magic)")
        (hl,) = struct.unpack("<I", head[len(MAGIC):])
        if hl > 4096:
            raise ShardError("invalid", f"shard header of {hl} bytes")
        try:
            hd = json.loads(f.read(hl))
            n, c, h, w = (int(hd[k]) for k in ("n", "c", "h", "w"))
            masks = int(hd.get("masks", 0))
        except (ValueError, KeyError, TypeError) as e:
            raise ShardError("invalid", f"shard header: {e}")
    off = -(-(len(MAGIC) + 4 + hl) // ALIGN) * ALIGN
    if masks not in (0, 1) or min(n, c, h, w) < 1 or off + 4 * n * c * h * w + 4 * n + masks * n * h * w != size:
        raise ShardError("invalid", f"shard of {size} bytes does not hold {n} examples of {c}x{h}x{w}" + (" with masks" if masks else ""))
    return n, c, h, w, off, bool(masks)


class ShardSet:
    """The examples of a round's shards, indexable by global example index
    (a LongTensor of indices gives a float32 N x C x H x W tensor)."""

    def __init__(self, cache, ids, shape, classes):
        if not 0 < len(ids) <= MAX_SHARDS:
            raise ShardError("invalid", f"{len(ids)} shards; want 1 to {MAX_SHARDS}")
        self.x, self.m, labels, starts = [], [], [], [0]
        for sid in ids:
            p = cache.path(sid)
            if not os.path.exists(p):
                raise ShardError("missing", f"shard {sid[:12]} is not in the trainer's cache (evicted, or not sent): "
                                            "the agent sends the missing shards before each round; if the site's data is larger "
                                            "than the cache (--cache-bytes), raise the bound")
            os.utime(p)  # recently used: evicted last
            n, c, h, w, off, masks = header(p)
            if (c, h, w) != tuple(shape):
                raise ShardError("invalid", f"shard {sid[:12]} holds {c}x{h}x{w} examples, the model takes {shape[0]}x{shape[1]}x{shape[2]}")
            self.x.append(np.memmap(p, dtype="<f4", mode="r", offset=off, shape=(n, c, h, w)))
            y = np.fromfile(p, dtype="<i4", count=n, offset=off + 4 * n * c * h * w)
            self.m.append(np.memmap(p, dtype=np.uint8, mode="r", offset=off + 4 * n * c * h * w + 4 * n, shape=(n, h, w))
                          if masks else None)
            if y.min() < 0 or y.max() >= classes:
                raise ShardError("invalid", f"shard {sid[:12]} has labels {y.min()}..{y.max()}, the model has {classes} classes")
            labels.append(y)
            starts.append(starts[-1] + n)
        self.starts = np.array(starts)
        self.has_masks = all(m is not None for m in self.m)
        if not self.has_masks and any(m is not None for m in self.m):
            raise ShardError("invalid", "some shards of the round have masks and some do not")
        self.y = torch.from_numpy(np.concatenate(labels).astype(np.int64))

    def __len__(self):
        return int(self.starts[-1])

    def _take(self, arrays, idx, dtype):
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        which = np.searchsorted(self.starts, idx, side="right") - 1
        out = np.empty((len(idx),) + arrays[0].shape[1:], dtype=dtype)
        for s in np.unique(which):
            sel = which == s
            out[sel] = arrays[s][idx[sel] - self.starts[s]]
        return torch.from_numpy(out)

    def __getitem__(self, idx):
        return self._take(self.x, idx, np.float32)

    def masks(self, idx):
        """The examples' masks as float32 N x H x W (0 or 1)."""
        return self._take(self.m, idx, np.float32)
