"""The single-process reference of a 2-rank data-parallel step (test/torch/ddp.test.ts): per step, the gradients
of the two half-batches averaged (each half's loss is its rank's, batch norm on each half's own statistics), one
optimizer step; the moving statistics are rank 0's (DistributedDataParallel broadcasts rank 0's buffers).

Usage: python3 ddp_reference.py DIR   (DIR/run.json, DIR/init.bin, DIR/batches.bin -> DIR/out.bin)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "torch", "py"))
from colorpipe_torch.trainer import Trainer, lr_at  # noqa: E402


def main() -> None:
    d = sys.argv[1]
    with open(os.path.join(d, "run.json")) as f:
        run = json.load(f)
    torch.set_num_threads(1)
    tr = Trainer(run["table"], run["train"], run["specs"], torch.device("cpu"))
    tr.set_weights(torch.frombuffer(bytearray(open(os.path.join(d, "init.bin"), "rb").read()), dtype=torch.float32))
    raw = open(os.path.join(d, "batches.bin"), "rb").read()
    n, h, w = run["half"], run["size"], run["size"]
    px = n * h * w
    per_half = 4 * (3 * px + n)
    bufs = [b for name, b in tr.net.named_buffers() if "running" in name]
    for k in range(run["steps"]):
        for g in tr.opt.param_groups:
            g["lr"] = lr_at(run["train"], tr.iterations + 1)
        tr.opt.zero_grad(set_to_none=True)
        kept = None
        for r in range(2):
            at = (2 * k + r) * per_half
            L = torch.frombuffer(bytearray(raw[at:at + 4 * px]), dtype=torch.float32)
            ab = torch.frombuffer(bytearray(raw[at + 4 * px:at + 12 * px]), dtype=torch.float32)
            cls = torch.frombuffer(bytearray(raw[at + 12 * px:at + 12 * px + 4 * n]), dtype=torch.int32)
            x, target = tr._inputs(L, ab, n, h, w)
            pred, logits = tr.net(x)
            labelled = int((cls >= 0).sum())
            total, _, _ = tr._losses(pred, logits, target, cls, labelled)
            (total / 2).backward()
            if r == 0:
                kept = [b.clone() for b in bufs]
        with torch.no_grad():
            for b, v in zip(bufs, kept):
                b.copy_(v)
        tr.opt.step()
        tr.iterations += 1
    with open(os.path.join(d, "out.bin"), "wb") as f:
        for t in tr.weights():
            f.write(t.contiguous().view(-1).numpy().tobytes())


if __name__ == "__main__":
    main()
