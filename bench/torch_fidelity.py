#!/usr/bin/env python3
"""PyTorch side of `pipe bench fidelity` (bench/fidelity.ts): trains the same network (the PyTorch engine's,
src/torch/py/colorpipe_torch/net.py) from colorpipe's initial weights on colorpipe's batches with the same
optimizer and learning rates, and prints its per-step losses.

Usage: python3 bench/torch_fidelity.py DIR [--threads N] [--tag torch] [--dtype float64|float32] [--steps N]
float64 (the default) is the reference: the network's exact mathematics, up to rounding far below float32's.
PyTorch 1.13's own float32 CPU gradients are the less exact ones here (batch-norm backward sums in float32:
0.9-3.6% relative L2 off the float64 gradient at the demo's first step, where colorpipe's kernels, which sum
in double precision, are 1.2e-5 off), so float32 PyTorch only serves as the float-noise floor.
DIR (written by bench/fidelity.ts; formats in bench/fidelity-data.ts):
  run.json         {"table", "steps", "alpha", "optimizer": {"type", "beta1", "beta2", "epsilon", "rho"},
                    "lr": [lr of step 1, 2, ...], "snapshots": [steps after which to save the weights]}
  init.bin/.json   colorpipe's initial weights, in colorpipe's names and layout (net.py converts them)
  batches/         L.bin, ab.bin, cls.bin, batches.json
Writes DIR/<tag>_after_<step>.bin/.json (weights after that step) and DIR/<tag>_grad_1.bin/.json (the
gradients of step 1, on the initial weights), same format, names and layout, and prints one JSON object:
  {"torch", "threads", "seconds", "loss": [...], "mse": [...], "ce": [...]}.
Not part of the tests.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "torch", "py"))
from colorpipe_torch.net import Colorizer, from_colorpipe, to_colorpipe, weight_slots  # noqa: E402


def read_tensors(base):
    with open(base + ".json") as f:
        index = json.load(f)
    data = np.fromfile(base + ".bin", dtype="<f4")
    out = {}
    for t in index["tensors"]:
        n = int(np.prod(t["shape"])) if t["shape"] else 1
        out[t["name"]] = torch.from_numpy(data[t["offset"]:t["offset"] + n].copy()).reshape(t["shape"])
    return out


def write_tensors(base, named):
    index, offset = [], 0
    with open(base + ".bin", "wb") as f:
        for name, t in named:
            a = t.detach().cpu().contiguous().numpy().astype("<f4")
            f.write(a.tobytes())
            index.append({"name": name, "shape": list(a.shape), "offset": offset})
            offset += a.size
    with open(base + ".json", "w") as f:
        json.dump({"tensors": index}, f)


def load_weights(model, slots, weights):
    """Colorpipe's weights (its names and layout) into the model's tensors, cast to their dtype."""
    missing = set(slots) ^ set(weights)
    if missing:
        raise SystemExit(f"torch_fidelity: weight names differ between colorpipe and torch: {sorted(missing)}")
    with torch.no_grad():
        for name, (t, kind) in slots.items():
            got, want = weights[name], list(to_colorpipe(t, kind).shape)
            if list(got.shape) != want:
                raise SystemExit(f"torch_fidelity: {name} is {list(got.shape)} from colorpipe, {want} here")
            t.copy_(from_colorpipe(got, kind, t))


def colorpipe_layout(slots, grads=False):
    """(name, tensor) in colorpipe's layout: the weights, or (grads) the gradients of those that have one."""
    return [(n, to_colorpipe(t.grad if grads else t, kind)) for n, (t, kind) in slots.items() if not grads or t.grad is not None]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--tag", default="torch")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: run.json's)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with open(os.path.join(a.dir, "run.json")) as f:
        run = json.load(f)
    t = run["table"]
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    # net.py builds float32; the float64 reference casts it before the weights go in (the cast replaces the
    # batch-norm buffers, so the slots are taken after it).
    model = Colorizer(t).to(dtype)
    slots = weight_slots(model)
    load_weights(model, slots, read_tensors(os.path.join(a.dir, "init")))

    bdir = os.path.join(a.dir, "batches")
    with open(os.path.join(bdir, "batches.json")) as f:
        bi = json.load(f)
    B, S = bi["batch"], bi["size"]
    steps = min(run["steps"], bi["steps"], a.steps or run["steps"])
    L_all = np.memmap(os.path.join(bdir, "L.bin"), dtype="<f4", mode="r", shape=(bi["steps"], B, S, S, 1))
    ab_all = np.memmap(os.path.join(bdir, "ab.bin"), dtype="<f4", mode="r", shape=(bi["steps"], B, S, S, 2))
    cls_all = np.fromfile(os.path.join(bdir, "cls.bin"), dtype="<i4").reshape(bi["steps"], B)

    o = run["optimizer"]
    if o["type"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=run["lr"][0], betas=(o["beta1"], o["beta2"]), eps=o["epsilon"])
    else:
        opt = torch.optim.Adadelta(model.parameters(), lr=run["lr"][0], rho=o["rho"], eps=o["epsilon"])
    alpha = run["alpha"]
    snapshots = set(run.get("snapshots", []))
    losses, mses, ces = [], [], []
    model.train()
    t0 = time.perf_counter()
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = run["lr"][i]
        L = torch.from_numpy(np.array(L_all[i])).permute(0, 3, 1, 2).contiguous().to(dtype)
        ab = torch.from_numpy(np.array(ab_all[i])).permute(0, 3, 1, 2).contiguous().to(dtype)
        target = F.avg_pool2d(ab, 2)
        cls = torch.from_numpy(cls_all[i].astype(np.int64))
        opt.zero_grad(set_to_none=True)
        out, logits = model(L)
        mse = F.mse_loss(out, target)
        ce = torch.zeros((), dtype=dtype)
        labelled = int((cls >= 0).sum())
        if logits is not None and labelled > 0:
            nll = F.cross_entropy(logits, cls.clamp(min=0), reduction="none")
            ce = (nll * (cls >= 0).to(dtype)).sum() / labelled
        loss = mse + alpha * ce if alpha > 0 else mse
        loss.backward()
        if i == 0:
            write_tensors(os.path.join(a.dir, f"{a.tag}_grad_1"), colorpipe_layout(slots, grads=True))
        opt.step()
        losses.append(loss.item())
        mses.append(mse.item())
        ces.append(ce.item())
        if i + 1 in snapshots:
            write_tensors(os.path.join(a.dir, f"{a.tag}_after_{i + 1}"), colorpipe_layout(slots))
    seconds = time.perf_counter() - t0
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": a.dtype, "seconds": seconds, "loss": losses, "mse": mses, "ce": ces}))


if __name__ == "__main__":
    sys.exit(main())
