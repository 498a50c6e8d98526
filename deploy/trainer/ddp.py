"""Multi-GPU training under torchrun: every process of the node trains the
same round on its part of each batch, with DistributedDataParallel averaging
the gradients; rank 0 alone serves gRPC.

    torchrun --standalone --nproc_per_node 4 trainer.py serve --listen 127.0.0.1:50061 --shard-cache /cache

Design choices:
- Rank 0 receives a round (weights, manifest, settings, shard ids), checks it
  and loads its shards, then shares it with the other ranks
  (broadcast_object_list); they read the same shards from the node's cache.
- Each global batch is split by rank (idx[rank::world]); each rank's loss is
  its examples' summed loss divided by the global batch size, times world,
  so DDP's average of the gradients is exactly the full batch's gradient:
  the update equals the single-process one (the CPU test checks this).
- Before every step rank 0 broadcasts whether the round was cancelled, so
  all ranks stop at the same step; metrics are summed over ranks.
- DP-SGD is refused under torchrun (its per-example sampling and noise run
  on one process), and so is a batch smaller than the number of ranks.
- Idle workers wait in a collective; the process group's timeout is 30 days,
  after which they exit and torchrun stops the node's trainer (restart it).
"""
import datetime
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class Par:
    def __init__(self, rank, world, local_rank):
        self.rank, self.world, self.local_rank = rank, world, local_rank

    def share(self, obj):
        """Rank 0's obj on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def stopped(self, cancelled):
        """Rank 0's cancelled() on every rank."""
        flag = torch.tensor([1 if self.rank == 0 and cancelled() else 0])
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def sum(self, *values):
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def wrap(self, model, device):
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def part(self, idx):
        return idx[self.rank::self.world]


def setup(device_choice):
    """A Par when run by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(days=30))
    return Par(rank, world, local)
