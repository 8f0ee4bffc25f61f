"""The colorization network of Iizuka, Simo-Serra and Ishikawa 2016 in PyTorch, built from colorpipe's layer table
(src/network/table.ts), computing exactly what colorpipe's tfjs network computes:

- TensorFlow's 'same' padding (at stride 2 on an even size: 0 before, 1 after), as an explicit pad;
- batch norm with the table's epsilon and momentum (keras momentum m is torch momentum 1 - m), then ReLU;
- the global path flattens its map in NHWC order, as tfjs does, so the first FC layer's weights carry over with a
  plain transpose;
- initial weights drawn as tfjs draws them: He normal truncated at two standard deviations for ReLU layers, Glorot
  uniform for the others, zero biases.

Weights cross to colorpipe in its names (`<layer>/kernel`, `<layer>_bn/gamma`, ...) and layouts (conv kernels
[kh, kw, in, out], dense kernels [in, out]): `weight_slots`, `to_colorpipe`, `from_colorpipe`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

Table = Dict[str, Any]


def same_pads(size: int, k: int, s: int) -> Tuple[int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """A 3x3 (or 1x1) convolution with TF 'same' padding, optional batch norm, then the activation."""

    def __init__(self, spec: Dict[str, Any], in_c: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.k: int = spec["kernel"]
        self.s: int = spec["stride"]
        self.conv = nn.Conv2d(in_c, spec["out"], self.k, self.s, padding=0, bias=bool(spec.get("bias", False)))
        self.bn: Optional[nn.BatchNorm2d] = nn.BatchNorm2d(spec["out"], eps=eps, momentum=1 - momentum) if spec.get("bn") else None
        self.act: str = spec["activation"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = same_pads(x.shape[2], self.k, self.s)
        l, r = same_pads(x.shape[3], self.k, self.s)
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
    """The network of a layer table. `forward(L)` is the training graph: ab at half size and the class logits."""

    def __init__(self, t: Table) -> None:
        super().__init__()
        eps, mom = t["bnEpsilon"], t["bnMomentum"]
        # colorpipe layer name -> Conv or nn.Linear (a plain dict: the modules are registered below).
        self.by_name: Dict[str, nn.Module] = {}

        def convs(specs: List[Dict[str, Any]], c: int) -> Tuple[nn.Sequential, int]:
            mods: List[nn.Module] = []
            for s in specs:
                if s["kind"] == "conv":
                    mods.append(Conv(s, c, eps, mom))
                    self.by_name[s["name"]] = mods[-1]
                    c = s["out"]
                elif s["kind"] == "upsample":
                    mods.append(nn.Upsample(scale_factor=2, mode="nearest"))
            return nn.Sequential(*mods), c

        self.low, low_c = convs(t["low"], 1)
        self.mid, mid_c = convs(t["mid"], low_c)
        gconvs = [s for s in t["global"] if s["kind"] == "conv"]
        self.gconv, gc = convs(gconvs, low_c)
        size = t["inputSize"]
        for s in t["low"] + gconvs:
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
        self.cls_act: List[str] = [s["activation"] for s in t["classifier"]]
        n = dense[1]["out"]
        for s in t["classifier"]:
            self.cls.append(nn.Linear(n, s["out"]))
            self.by_name[s["name"]] = self.cls[-1]
            n = s["out"]
        self.activations: Dict[str, str] = {s["name"]: s.get("activation", "linear") for s in _layers(t)}

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        low = self.low(x)
        return self.heads(low, low)

    def infer(self, local: torch.Tensor, glob: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The inference graph colorize runs: local and global inputs, low-level features of each."""
        return self.heads(self.low(local), self.low(glob))

    def heads(self, low: torch.Tensor, low_global: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        g = self.gconv(low_global)
        # NHWC flatten, as tfjs: free on a channels-last map.
        g = g.permute(0, 2, 3, 1).reshape(g.shape[0], -1)
        fc2: Optional[torch.Tensor] = None
        for i, fc in enumerate(self.fc):
            g = F.relu(fc(g))
            if i == 1:
                fc2 = g
        mid = self.mid(low)
        tiled = g[:, :, None, None].expand(-1, -1, mid.shape[2], mid.shape[3])
        ab = self.color(self.fusion(torch.cat([mid, tiled], 1)))
        logits: Optional[torch.Tensor] = None
        if len(self.cls):
            h = fc2
            for fc, act in zip(self.cls, self.cls_act):
                h = fc(h)
                if act == "relu":
                    h = F.relu(h)
            logits = h
        return ab, logits


def _layers(t: Table) -> List[Dict[str, Any]]:
    return [l for part in ("low", "mid", "global", "fusion", "color", "classifier") for l in t[part]]


def init_weights(model: Colorizer, seed: int) -> None:
    """tfjs's initializers (see the module docstring), seeded: the same seed gives the same weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.by_name.items():
            w = m.weight if isinstance(m, nn.Linear) else m.conv.weight  # type: ignore[union-attr]
            if w.dim() == 4:
                fan_in = w.shape[1] * w.shape[2] * w.shape[3]
                fan_out = w.shape[0] * w.shape[2] * w.shape[3]
            else:
                fan_in, fan_out = w.shape[1], w.shape[0]
            if model.activations.get(name) == "relu":
                std = math.sqrt(2.0 / fan_in)
                t = torch.empty(w.shape).normal_(0.0, std, generator=g)
                # Truncated at two standard deviations by redrawing, as tf's truncated normal does.
                while True:
                    bad = t.abs() > 2 * std
                    if not bool(bad.any()):
                        break
                    t[bad] = torch.empty(int(bad.sum())).normal_(0.0, std, generator=g)
            else:
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                t = torch.empty(w.shape).uniform_(-limit, limit, generator=g)
            w.copy_(t)
            bias = m.bias if isinstance(m, nn.Linear) else m.conv.bias  # type: ignore[union-attr]
            if bias is not None:
                bias.zero_()


# kind: how a weight's layout differs from colorpipe's: 'conv' [out, in, kh, kw] vs [kh, kw, in, out];
# 'dense' [out, in] vs [in, out]; 'vec' the same.
Slot = Tuple[torch.Tensor, str]


def weight_slots(model: Colorizer) -> Dict[str, Slot]:
    """colorpipe weight name -> (the tensor holding it: parameter or batch-norm buffer, its layout kind)."""
    out: Dict[str, Slot] = {}
    for layer, m in model.by_name.items():
        if isinstance(m, nn.Linear):
            out[layer + "/kernel"] = (m.weight, "dense")
            out[layer + "/bias"] = (m.bias, "vec")
            continue
        assert isinstance(m, Conv)
        out[layer + "/kernel"] = (m.conv.weight, "conv")
        if m.conv.bias is not None:
            out[layer + "/bias"] = (m.conv.bias, "vec")
        if m.bn is not None:
            out[layer + "_bn/gamma"] = (m.bn.weight, "vec")
            out[layer + "_bn/beta"] = (m.bn.bias, "vec")
            out[layer + "_bn/moving_mean"] = (m.bn.running_mean, "vec")  # type: ignore[assignment]
            out[layer + "_bn/moving_variance"] = (m.bn.running_var, "vec")  # type: ignore[assignment]
    return out


def to_colorpipe(t: torch.Tensor, kind: str) -> torch.Tensor:
    """A torch-layout tensor in colorpipe's layout (float32, contiguous, on the CPU)."""
    t = t.detach().float()
    if kind == "conv":
        t = t.permute(2, 3, 1, 0)
    elif kind == "dense":
        t = t.t()
    return t.contiguous().cpu()


def from_colorpipe(data: torch.Tensor, kind: str, like: torch.Tensor) -> torch.Tensor:
    """colorpipe-layout values (flat or shaped) as a tensor shaped, laid out and placed like `like`."""
    if kind == "conv":
        out_c, in_c, kh, kw = like.shape
        t = data.reshape(kh, kw, in_c, out_c).permute(3, 2, 0, 1)
    elif kind == "dense":
        out_c, in_c = like.shape
        t = data.reshape(in_c, out_c).t()
    else:
        t = data.reshape(like.shape)
    return t.to(device=like.device, dtype=like.dtype).contiguous(memory_format=_format_of(like))


def _format_of(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
