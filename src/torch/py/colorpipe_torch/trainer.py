"""One rank's training: the network (net.py) on a device, its optimizer, the loss, a step, an evaluation, and the
state a checkpoint holds, in colorpipe's names and layouts. Conventions as colorpipe's tfjs engine
(src/network/training.ts): Adam with epsilon 1e-7 (or Adadelta, rho 0.95, epsilon 1e-6), the learning rate set per
step (constant or cosine), loss = MSE(ab at half size, target averaged over 2x2) + alpha * cross-entropy over the
labelled samples.

Precision: fp32 (no TF32 anywhere), tf32 (TF32 matmuls and convolutions on CUDA), bf16 (autocast to bfloat16 for
the forward pass, float32 master weights and loss).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .net import Colorizer, from_colorpipe, init_weights, to_colorpipe, weight_slots

Spec = Dict[str, Any]


def lr_at(train: Dict[str, Any], t: int) -> float:
    """src/network/training.ts learningRateAt: the rate of iteration t (1-based)."""
    if train.get("lrDecay") == "cosine":
        steps = train["steps"]
        return train["lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    return float(train["lr"])


def slot_names(optimizer: str) -> Tuple[str, str]:
    return ("accum_grad", "accum_var") if optimizer == "adadelta" else ("m", "v")


# The optimizers' state keys for colorpipe's two slots.
STATE_KEYS = {"adam": ("exp_avg", "exp_avg_sq"), "adadelta": ("square_avg", "acc_delta")}


class Trainer:
    def __init__(self, table: Dict[str, Any], train: Dict[str, Any], specs: Sequence[Spec], device: torch.device,
                 precision: str = "fp32", channels_last: bool = False, compile_model: bool = False,
                 world: int = 1, sync_bn: bool = False) -> None:
        self.train_cfg = train
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.world = world
        self.specs = list(specs)
        net = Colorizer(table)
        init_weights(net, int(train.get("seed", 0)))
        net.to(device)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.net = net
        self.slots = weight_slots(net)
        self._check_specs()
        module: torch.nn.Module = net
        if sync_bn:
            module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            self.slots = weight_slots(net)
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [device.index] if device.type == "cuda" else None
            module = DDP(module, device_ids=ids, broadcast_buffers=True)
        if compile_model:
            if not hasattr(torch, "compile"):
                raise RuntimeError(f"--compile needs torch >= 2.0 (this is torch {torch.__version__})")
            module = torch.compile(module)  # type: ignore[assignment]
        self.run = module
        self.trainable: List[Spec] = [s for s in self.specs if s["trainable"]]
        params = [self.slots[s["name"]][0] for s in self.trainable]
        self.optimizer_type: str = train["optimizer"]
        self.opt = make_optimizer(self.optimizer_type, params, float(train["lr"]), device)
        self.iterations = 0
        self.alpha = float(train.get("alpha", 0))
        net.train()

    def _check_specs(self) -> None:
        names = {s["name"] for s in self.specs}
        if names != set(self.slots):
            raise RuntimeError(f"the PyTorch network and colorpipe's layer table disagree: {sorted(names ^ set(self.slots))[:4]}")
        for s in self.specs:
            t, kind = self.slots[s["name"]]
            if list(to_colorpipe(t, kind).shape) != list(s["shape"]):
                raise RuntimeError(f"{s['name']}: the PyTorch network has {list(t.shape)}, the table {s['shape']}")

    def _inputs(self, L: torch.Tensor, ab: torch.Tensor, n: int, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor]:
        x = L.reshape(n, 1, h, w)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = F.avg_pool2d(ab.reshape(n, h, w, 2).permute(0, 3, 1, 2), 2)
        return x, target

    def _losses(self, pred: torch.Tensor, logits: Optional[torch.Tensor], target: torch.Tensor, cls: torch.Tensor,
                labelled: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mse = F.mse_loss(pred.float(), target)
        if logits is not None and labelled > 0:
            mask = (cls >= 0).float()
            nll = F.cross_entropy(logits.float(), cls.clamp(min=0).long(), reduction="none")
            ce = (nll * mask).sum() / labelled
        elif logits is not None:
            # No labels in the batch: the head takes part with a zero loss (every rank reduces every gradient).
            ce = logits.float().sum() * 0.0
        else:
            ce = torch.zeros((), device=pred.device)
        total = mse + self.alpha * ce if self.alpha > 0 else mse + 0.0 * ce
        return total, mse, ce.detach()

    def _autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return _NoContext()

    def step(self, L: torch.Tensor, ab: torch.Tensor, cls: torch.Tensor, n: int, h: int, w: int, labelled: int,
             stop: bool) -> torch.Tensor:
        """Launches one optimizer step; returns [loss, mse, ce, stop] (summed over ranks), not yet read."""
        x, target = self._inputs(L, ab, n, h, w)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.train_cfg, self.iterations + 1)
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            pred, logits = self.run(x)
        total, mse, ce = self._losses(pred, logits, target, cls, labelled)
        total.backward()
        self.opt.step()
        self.iterations += 1
        stats = torch.stack([total.detach(), mse.detach(), ce, torch.tensor(1.0 if stop else 0.0, device=total.device)])
        if self.world > 1:
            import torch.distributed as dist
            # Issued here, in step order on every rank, so the collectives of consecutive steps never interleave.
            dist.all_reduce(stats)
        return stats

    @torch.no_grad()
    def evaluate(self, L: torch.Tensor, ab: torch.Tensor, cls: torch.Tensor, n: int, h: int, w: int,
                 labelled: int) -> Tuple[List[float], torch.Tensor]:
        """Losses and ab (NHWC, on the CPU) in inference mode; changes nothing."""
        self.net.eval()
        try:
            x, target = self._inputs(L, ab, n, h, w)
            with self._autocast():
                pred, logits = self.net(x)
            total, mse, ce = self._losses(pred, logits, target, cls, labelled)
            return [float(total), float(mse), float(ce)], pred.float().permute(0, 2, 3, 1).contiguous().cpu()
        finally:
            self.net.train()

    def weights(self) -> List[torch.Tensor]:
        """Every weight in the specs' order, colorpipe's layout, on the CPU."""
        return [to_colorpipe(*self.slots[s["name"]]) for s in self.specs]

    @torch.no_grad()
    def set_weights(self, flat: torch.Tensor) -> None:
        at = 0
        for s in self.specs:
            n = _numel(s["shape"])
            t, kind = self.slots[s["name"]]
            t.copy_(from_colorpipe(flat[at:at + n], kind, t))
            at += n

    def optimizer_state(self) -> Tuple[int, List[torch.Tensor]]:
        """The step count and the slots: all of the first slot in trainable order, then all of the second."""
        keys = STATE_KEYS[self.optimizer_type]
        out: List[torch.Tensor] = []
        for key in keys:
            for s in self.trainable:
                t, kind = self.slots[s["name"]]
                st = self.opt.state.get(t, {})
                v = st.get(key)
                out.append(to_colorpipe(v, kind) if v is not None else torch.zeros(_numel(s["shape"])))
        return self.iterations, out

    @torch.no_grad()
    def set_optimizer_state(self, iterations: int, flat: torch.Tensor) -> None:
        params = [self.slots[s["name"]][0] for s in self.trainable]
        if not self.opt.state:
            # Let the optimizer make its state in its own types (they differ between torch versions), with a step
            # that moves nothing (zero gradients, no weight decay), then overwrite it.
            for p in params:
                p.grad = torch.zeros_like(p)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        keys = STATE_KEYS[self.optimizer_type]
        at = 0
        for key in keys:
            for s, p in zip(self.trainable, params):
                n = _numel(s["shape"])
                st = self.opt.state[p]
                st[key].copy_(from_colorpipe(flat[at:at + n], self.slots[s["name"]][1], st[key]))
                at += n
        for p in params:
            st = self.opt.state[p]
            step = st.get("step")
            st["step"] = step.fill_(float(iterations)) if isinstance(step, torch.Tensor) else iterations
        self.iterations = iterations


class _NoContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def make_optimizer(kind: str, params: List[torch.Tensor], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The engine's optimizer (src/network/training.ts constants): Adam (fused on CUDA where torch has it) or Adadelta."""
    if kind == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=0.95, eps=1e-6)
    extra: Dict[str, Any] = {}
    if device.type == "cuda" and "fused" in torch.optim.Adam.__init__.__code__.co_varnames:
        extra["fused"] = True
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7, **extra)
