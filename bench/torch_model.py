#!/usr/bin/env python3
"""PyTorch baseline for `pipe bench train`: the same colorization network (Iizuka et al. 2016), built from the
layer table colorpipe prints (src/model/network.ts layerTable), trained and run the same way, fp32 on CPU.

Usage: python3 bench/torch_model.py TABLE.json --batch 8 --steps 20 --warmup 3 [--predict-steps 20] [--threads N]
       [--device cpu|cuda|auto] (auto: cuda when torch sees one; bench/gpu-host.sh uses it on the GPU host)
Prints one JSON object: {"train_img_s", "predict_img_s", "threads", "torch", "params", ...}.

Not part of the tests (CI has no torch): on Debian, `apt-get install python3-torch` provides it.
Padding: TensorFlow's 'same' (stride 2 on an even size pads 0 before, 1 after), reproduced with an explicit
asymmetric pad, so both frameworks compute exactly the same network. The global path flattens NCHW, as PyTorch
code does; colorpipe's weights carry over with gl_fc1's inputs reordered (src/model/torch-layout.ts).
`Colorizer.by_name` maps colorpipe's layer names to the modules (bench/torch_fidelity.py loads weights by name).
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_pads(size, k, s):
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """3x3 (or 1x1) conv with TF 'same' padding, optional BN, activation."""

    def __init__(self, spec, in_c, eps, momentum):
        super().__init__()
        self.k, self.s = spec["kernel"], spec["stride"]
        self.conv = nn.Conv2d(in_c, spec["out"], self.k, self.s, padding=0, bias=spec.get("bias", False))
        # keras momentum m (moving = m*moving + (1-m)*batch) is torch momentum 1 - m.
        self.bn = nn.BatchNorm2d(spec["out"], eps=eps, momentum=1 - momentum) if spec.get("bn") else None
        self.act = spec["activation"]

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        t, b = same_pads(h, self.k, self.s)
        l, r = same_pads(w, self.k, self.s)
        if t or b or l or r:
            x = F.pad(x, (l, r, t, b))
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act == "relu":
            return F.relu(x)
        if self.act == "sigmoid":
            return torch.sigmoid(x)
        return x


class Colorizer(nn.Module):
    def __init__(self, t):
        super().__init__()
        eps, mom = t["bnEpsilon"], t["bnMomentum"]
        c = 1

        def convs(specs, c):
            mods = []
            for s in specs:
                if s["kind"] == "conv":
                    mods.append(Conv(s, c, eps, mom))
                    self.by_name[s["name"]] = mods[-1]
                    c = s["out"]
                elif s["kind"] == "upsample":
                    mods.append(nn.Upsample(scale_factor=2, mode="nearest"))
            return nn.Sequential(*mods), c

        # colorpipe layer name -> Conv or nn.Linear (a plain dict: the modules are registered below).
        self.by_name = {}
        self.low, c = convs(t["low"], 1)
        low_c = c
        self.mid, mid_c = convs(t["mid"], low_c)
        gconvs = [s for s in t["global"] if s["kind"] == "conv"]
        self.gconv, gc = convs(gconvs, low_c)
        size = t["inputSize"]
        for s in t["low"]:
            size = math.ceil(size / s["stride"])
        for s in gconvs:
            size = math.ceil(size / s["stride"])
        dense = [s for s in t["global"] if s["kind"] == "dense"]
        self.fc = nn.ModuleList()
        n = size * size * gc
        for s in dense:
            self.fc.append(nn.Linear(n, s["out"]))
            self.by_name[s["name"]] = self.fc[-1]
            n = s["out"]
        fu = t["fusion"][1]
        self.fusion = Conv(fu, mid_c + n, eps, mom)
        self.by_name[fu["name"]] = self.fusion
        self.color, _ = convs(t["color"], fu["out"])
        self.cls = nn.ModuleList()
        n = dense[1]["out"]
        self.cls_act = [s["activation"] for s in t["classifier"]]
        for s in t["classifier"]:
            self.cls.append(nn.Linear(n, s["out"]))
            self.by_name[s["name"]] = self.cls[-1]
            n = s["out"]

    def forward(self, x):
        low = self.low(x)
        return self.heads(low, low)

    def infer(self, local, glob):
        """The inference graph colorize runs (and the ONNX export): low-level features of each input."""
        return self.heads(self.low(local), self.low(glob))

    def heads(self, low, low_global):
        g = self.gconv(low_global)
        # NCHW flatten (PyTorch's own order; tfjs flattens NHWC: torch-layout.ts reorders gl_fc1's inputs).
        g = g.reshape(g.shape[0], -1)
        fc2 = None
        for i, fc in enumerate(self.fc):
            g = F.relu(fc(g))
            if i == 1:
                fc2 = g
        mid = self.mid(low)
        tiled = g[:, :, None, None].expand(-1, -1, mid.shape[2], mid.shape[3])
        ab = self.color(self.fusion(torch.cat([mid, tiled], 1)))
        logits = None
        if len(self.cls):
            h = fc2
            for fc, act in zip(self.cls, self.cls_act):
                h = fc(h)
                if act == "relu":
                    h = F.relu(h)
            logits = h
        return ab, logits


def main():
    p = argparse.ArgumentParser()
    p.add_argument("table")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--predict-steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=1 / 300)
    p.add_argument("--device", default="cpu")
    p.add_argument("--predict-only", action="store_true",
                   help="skip training; predict with the inference graph (local and global inputs, as colorize)")
    a = p.parse_args()
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    with open(a.table) as f:
        t = json.load(f)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    S, B = t["inputSize"], a.batch
    model = Colorizer(t).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    L = torch.rand(B, 1, S, S, device=dev)
    ab = torch.rand(B, 2, S // 2, S // 2, device=dev)
    ncls = t["numClasses"]
    cls = torch.randint(0, max(ncls, 1), (B,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        out, logits = model(L)
        loss = F.mse_loss(out, ab)
        if logits is not None:
            loss = loss + a.alpha * F.cross_entropy(logits, cls)
        loss.backward()
        opt.step()
        return loss.item()

    if a.predict_only:
        model.eval()
        ps = a.predict_steps or a.steps
        with torch.no_grad():
            for _ in range(a.warmup):
                model.infer(L, L)
            t0 = time.perf_counter()
            for _ in range(ps):
                model.infer(L, L)
            pred_s = time.perf_counter() - t0
        print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "batch": B, "size": S, "predict_steps": ps, "predict_img_s": B * ps / pred_s}))
        return 0

    model.train()
    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    train_s = time.perf_counter() - t0

    model.eval()
    ps = a.predict_steps or a.steps
    with torch.no_grad():
        for _ in range(a.warmup):
            model(L)
        t0 = time.perf_counter()
        sync()
        for _ in range(ps):
            model(L)
        sync()
        pred_s = time.perf_counter() - t0

    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "device": dev,
        "threads": torch.get_num_threads(),
        "batch": B,
        "size": S,
        "params": sum(p.numel() for p in model.parameters()) + sum(b.numel() for n, b in model.named_buffers() if "running" in n),
        "train_steps": a.steps,
        "train_img_s": B * a.steps / train_s,
        "train_ms_per_step": 1000 * train_s / a.steps,
        "predict_img_s": B * ps / pred_s,
    }))


if __name__ == "__main__":
    sys.exit(main())
