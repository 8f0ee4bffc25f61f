#!/usr/bin/env python3
"""PyTorch side of `pipe bench fidelity` (bench/fidelity.ts): trains the same network (bench/torch_model.py)
from colorpipe's initial weights on colorpipe's batches with the same optimizer and learning rates, and prints
its per-step losses.

Usage: python3 bench/torch_fidelity.py DIR [--threads N] [--tag torch] [--dtype float64|float32] [--steps N]
float64 (the default) is the reference: the network's exact mathematics, up to rounding far below float32's.
PyTorch 1.13's own float32 CPU gradients are the less exact ones here (batch-norm backward sums in float32:
0.9-3.6% relative L2 off the float64 gradient at the demo's first step, where colorpipe's kernels, which sum
in double precision, are 1.2e-5 off), so float32 PyTorch only serves as the float-noise floor.
DIR (written by bench/fidelity.ts; formats in bench/fidelity-data.ts):
  run.json         {"table", "steps", "alpha", "optimizer": {"type", "beta1", "beta2", "epsilon", "rho"},
                    "lr": [lr of step 1, 2, ...], "snapshots": [steps after which to save the weights]}
  init.bin/.json   colorpipe's initial weights, torch layouts, colorpipe's names
  batches/         L.bin, ab.bin, cls.bin, batches.json
Writes DIR/<tag>_after_<step>.bin/.json (weights after that step) and DIR/<tag>_grad_1.bin/.json (the
gradients of step 1, on the initial weights), same format and names, and prints one JSON object:
  {"torch", "threads", "seconds", "loss": [...], "mse": [...], "ce": [...]}.
Not part of the tests (CI has no torch).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import Colorizer  # noqa: E402


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


def slots(model):
    """colorpipe weight name -> the torch tensor holding it (parameter or batch-norm buffer)."""
    out = {}
    for layer, m in model.by_name.items():
        if isinstance(m, torch.nn.Linear):
            out[layer + "/kernel"] = m.weight
            out[layer + "/bias"] = m.bias
            continue
        out[layer + "/kernel"] = m.conv.weight
        if m.conv.bias is not None:
            out[layer + "/bias"] = m.conv.bias
        if m.bn is not None:
            out[layer + "_bn/gamma"] = m.bn.weight
            out[layer + "_bn/beta"] = m.bn.bias
            out[layer + "_bn/moving_mean"] = m.bn.running_mean
            out[layer + "_bn/moving_variance"] = m.bn.running_var
    return out


def load_weights(model, weights):
    s = slots(model)
    missing = set(s) ^ set(weights)
    if missing:
        raise SystemExit(f"torch_fidelity: weight names differ between colorpipe and torch: {sorted(missing)}")
    with torch.no_grad():
        for name, t in s.items():
            if tuple(t.shape) != tuple(weights[name].shape):
                raise SystemExit(f"torch_fidelity: {name} is {list(weights[name].shape)} from colorpipe, {list(t.shape)} here")
            t.copy_(weights[name])


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
    model = Colorizer(t)
    load_weights(model, read_tensors(os.path.join(a.dir, "init")))
    model = model.to(dtype)

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
            grads = [(n, t.grad) for n, t in slots(model).items() if t.grad is not None]
            write_tensors(os.path.join(a.dir, f"{a.tag}_grad_1"), grads)
        opt.step()
        losses.append(loss.item())
        mses.append(mse.item())
        ces.append(ce.item())
        if i + 1 in snapshots:
            write_tensors(os.path.join(a.dir, f"{a.tag}_after_{i + 1}"), list(slots(model).items()))
    seconds = time.perf_counter() - t0
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": a.dtype, "seconds": seconds, "loss": losses, "mse": mses, "ce": ces}))


if __name__ == "__main__":
    sys.exit(main())
