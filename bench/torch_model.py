#!/usr/bin/env python3
"""PyTorch baseline for `pipe bench train` and `bench predict` (and bench/gpu-host.ts): the network of colorpipe's
PyTorch engine (src/torch/py/colorpipe_torch/net.py, built from the layer table colorpipe prints), its initial
weights and its optimizer, with the engine's precision and memory-format settings, timed on random batches.

Usage: python3 bench/torch_model.py TABLE.json --batch 8 --steps 20 --warmup 3 [--predict-steps 20] [--threads N]
       [--device cpu|cuda|auto] [--precision fp32|tf32|bf16] [--channels-last | --no-channels-last]
(auto: cuda when torch sees one; --channels-last defaults to on for CUDA, as the engine; precision as
`pipe train --precision`: fp32 turns TF32 off, tf32 on, bf16 autocasts the forward pass)
Prints one JSON object: {"train_img_s", "predict_img_s", "threads", "torch", "params", ...}.

Not part of the tests; on Debian, `apt-get install python3-torch` provides it.
"""
import argparse
import json
import os
import sys
import time

# OpenMP reads this when torch loads it: sleeping rather than spinning threads, as the engine's workers
# (src/torch/engine.ts); a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "torch", "py"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from colorpipe_torch.net import Colorizer, init_weights  # noqa: E402
from colorpipe_torch.trainer import make_optimizer  # noqa: E402


def timed(fn, warmup, n, sync):
    """Seconds that n calls of fn take after warmup calls (the device's queue drained at both ends)."""
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return time.perf_counter() - t0


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
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--predict-only", action="store_true",
                   help="skip training; predict with the inference graph (local and global inputs, as colorize)")
    a = p.parse_args()
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    cuda = dev.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = a.precision == "tf32"
    if cuda:
        torch.backends.cudnn.benchmark = True
    channels_last = cuda if a.channels_last is None else a.channels_last

    def autocast():
        return torch.autocast(device_type=torch.device(dev).type, dtype=torch.bfloat16, enabled=a.precision == "bf16")

    with open(a.table) as f:
        t = json.load(f)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    S, B = t["inputSize"], a.batch
    model = Colorizer(t)
    init_weights(model, 0)
    model.to(dev)
    L = torch.rand(B, 1, S, S, device=dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        L = L.contiguous(memory_format=torch.channels_last)
    opt = make_optimizer("adam", list(model.parameters()), a.lr, torch.device(dev))
    ab = torch.rand(B, 2, S // 2, S // 2, device=dev)
    ncls = t["numClasses"]
    cls = torch.randint(0, max(ncls, 1), (B,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            out, logits = model(L)
        loss = F.mse_loss(out.float(), ab)
        if logits is not None:
            loss = loss + a.alpha * F.cross_entropy(logits.float(), cls)
        loss.backward()
        opt.step()
        return loss.item()

    ps = a.predict_steps or a.steps

    def predict(fn):
        model.eval()
        with torch.no_grad(), autocast():
            return timed(fn, a.warmup, ps, sync)

    if a.predict_only:
        pred_s = predict(lambda: model.infer(L, L))
        print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "batch": B, "size": S, "predict_steps": ps, "predict_img_s": B * ps / pred_s}))
        return 0

    model.train()
    train_s = timed(step, a.warmup, a.steps, sync)
    pred_s = predict(lambda: model(L))

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
