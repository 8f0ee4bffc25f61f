"""The PyTorch worker process of colorpipe's torch engine (src/torch/worker.ts starts one per device).

Control: one JSON request per line on stdin, one JSON reply per line on fd 3, in request order. Data: batches in
a ring of slots of a shared-memory file that Node writes (src/torch/ring.ts); weights and optimizer state through
files in the same folder. The worker reads ahead: while the device runs step k it takes step k+1's batch, so the
device never waits for Node between steps.

It exits when stdin closes, when its parent dies (PR_SET_PDEATHSIG), or on `quit`. SIGINT is ignored: Node decides
when a run stops (a Ctrl-C reaches every process of the terminal's group).
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import select
import signal
import sys
import traceback
from collections import deque
from datetime import timedelta
from typing import Any, Deque, Dict, List, Optional, Tuple

import torch

from .trainer import Trainer

Msg = Dict[str, Any]


def _die_with_parent() -> None:
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent:
        os._exit(1)


class Channel:
    """Requests from stdin (read without Python's buffering, so `ready` is exact), replies to fd 3."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self.out = os.fdopen(3, "wb", buffering=0)
        self.buf = b""

    def ready(self) -> bool:
        return b"\n" in self.buf or bool(select.select([self.fd], [], [], 0)[0])

    def read(self) -> Optional[Msg]:
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self, msg: Msg) -> None:
        self.out.write(json.dumps(msg).encode() + b"\n")


class Ring:
    """The shared-memory file's slots, viewed as tensors without a copy; on CUDA, one pinned staging buffer per slot."""

    def __init__(self, path: str, slots: int, slot_bytes: int, device: torch.device) -> None:
        self.f = open(path, "r+b")
        self.mm = mmap.mmap(self.f.fileno(), slots * slot_bytes)
        self.slot_bytes = slot_bytes
        self.device = device
        self.pinned: Dict[int, torch.Tensor] = {}

    def view(self, slot: int, offset: int, count: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.frombuffer(self.mm, dtype=dtype, count=count, offset=slot * self.slot_bytes + offset)

    def batch(self, slot: int, n: int, h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L [n*h*w], ab [n*h*w*2], cls [n] of a slot, on the device (one copy through pinned memory on CUDA)."""
        px = n * h * w
        L = self.view(slot, 0, px, torch.float32)
        ab = self.view(slot, 4 * px, 2 * px, torch.float32)
        cls = self.view(slot, 12 * px, n, torch.int32)
        if self.device.type != "cuda":
            return L, ab, cls
        stage = self.pinned.get(slot)
        if stage is None or stage.numel() < 3 * px + n:
            stage = torch.empty(3 * px + n, dtype=torch.float32).pin_memory()
            self.pinned[slot] = stage
        stage[:px].copy_(L)
        stage[px:3 * px].copy_(ab)
        stage[3 * px:3 * px + n].copy_(cls.view(torch.float32))
        on = stage[:3 * px + n].to(self.device, non_blocking=True)
        return on[:px], on[px:3 * px], on[3 * px:].view(torch.int32)

    def write(self, slot: int, offset: int, values: torch.Tensor) -> None:
        data = values.contiguous().view(-1).numpy().tobytes()
        start = slot * self.slot_bytes + offset
        self.mm[start:start + len(data)] = data


def _device(kind: str, local_rank: int) -> torch.device:
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA device")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _init(msg: Msg) -> Tuple[Trainer, Ring, Dict[str, Any]]:
    threads = int(msg.get("threads") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    dist_cfg = msg.get("dist")
    local_rank = int(dist_cfg["localRank"]) if dist_cfg else 0
    device = _device(msg["device"], local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        tf32 = msg["precision"] == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    world = 1
    if dist_cfg:
        import torch.distributed as dist
        world = int(dist_cfg["world"])
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://{dist_cfg['addr']}:{dist_cfg['port']}", rank=int(dist_cfg["rank"]),
                                world_size=world, timeout=timedelta(seconds=float(dist_cfg.get("timeout", 600))))
    trainer = Trainer(msg["table"], msg["train"], msg["specs"], device, precision=msg["precision"],
                      channels_last=device.type == "cuda", compile_model=bool(msg.get("compile")), world=world,
                      sync_bn=bool(msg.get("syncBn")))
    ring = Ring(msg["ring"]["path"], int(msg["ring"]["slots"]), int(msg["ring"]["slotBytes"]), device)
    info = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    return trainer, ring, info


def _write_file(path: str, tensors: List[torch.Tensor]) -> None:
    with open(path, "wb") as f:
        for t in tensors:
            f.write(t.contiguous().view(-1).numpy().tobytes())


def _read_file(path: str) -> torch.Tensor:
    with open(path, "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.float32)


def _collective(op: str, msg: Msg) -> Msg:
    import torch.distributed as dist
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world == 1:
        return {"texts": [msg["text"]]}
    out: List[Any] = [None] * world
    dist.all_gather_object(out, msg["text"])
    return {"texts": out if op == "allgather" or dist.get_rank() == 0 else None}


def serve(ch: Channel) -> None:
    trainer: Optional[Trainer] = None
    ring: Optional[Ring] = None
    # Steps launched whose losses are not yet read: (request id, stats on the device).
    pending: Deque[Tuple[Any, torch.Tensor]] = deque()

    def flush(keep: int) -> None:
        while len(pending) > keep:
            rid, stats = pending[0]
            # Reading the stats waits for the step (an asynchronous device error surfaces here).
            loss, mse, ce, stop = (float(v) for v in stats.tolist())
            pending.popleft()
            world = trainer.world if trainer else 1
            ch.reply({"id": rid, "ok": True, "loss": loss / world, "mse": mse / world, "ce": ce / world, "stop": stop > 0})

    def fail(e: BaseException, rid: Any) -> None:
        err = {"ok": False, "error": f"{type(e).__name__}: {e}".split("\n")[0], "trace": traceback.format_exc()}
        # Steps still unread share the failure: the state they would report is gone.
        for prid, _ in pending:
            if prid != rid:
                ch.reply({"id": prid, **err})
        pending.clear()
        if rid is not None:
            ch.reply({"id": rid, **err})

    while True:
        # Read ahead only while a step is running and the next request is already there.
        try:
            if pending and not ch.ready():
                flush(0)
        except Exception as e:  # noqa: BLE001 - every failure goes back to Node as a reply
            fail(e, None)
        msg = ch.read()
        if msg is None:
            return
        rid = msg.get("id")
        op = msg.get("op")
        try:
            if op != "step":
                flush(0)
            if op == "init":
                trainer, ring, info = _init(msg)
                ch.reply({"id": rid, "ok": True, **info})
            elif op == "step":
                assert trainer and ring
                n, h, w = int(msg["n"]), int(msg["h"]), int(msg["w"])
                L, ab, cls = ring.batch(int(msg["slot"]), n, h, w)
                pending.append((rid, trainer.step(L, ab, cls, n, h, w, int(msg["labelled"]), bool(msg.get("stop")))))
                flush(1)
            elif op == "evaluate":
                assert trainer and ring
                n, h, w = int(msg["n"]), int(msg["h"]), int(msg["w"])
                L, ab, cls = ring.batch(int(msg["slot"]), n, h, w)
                losses, pred = trainer.evaluate(L, ab, cls, n, h, w, int(msg["labelled"]))
                ring.write(int(msg["slot"]), int(msg["outOffset"]), pred)
                ch.reply({"id": rid, "ok": True, "loss": losses[0], "mse": losses[1], "ce": losses[2]})
            elif op == "weights":
                assert trainer
                _write_file(msg["path"], trainer.weights())
                ch.reply({"id": rid, "ok": True})
            elif op == "setWeights":
                assert trainer
                trainer.set_weights(_read_file(msg["path"]))
                ch.reply({"id": rid, "ok": True})
            elif op == "optimizer":
                assert trainer
                iterations, slots = trainer.optimizer_state()
                _write_file(msg["path"], slots)
                ch.reply({"id": rid, "ok": True, "iterations": iterations})
            elif op == "setOptimizer":
                assert trainer
                trainer.set_optimizer_state(int(msg["iterations"]), _read_file(msg["path"]))
                ch.reply({"id": rid, "ok": True})
            elif op == "channel":
                # The batch channel alone (the benchmark): a ring without a network, each batch taken as a step takes
                # it (on the CPU, copied once, as a device would copy it), then the device synchronized.
                if ring is None:
                    ring = Ring(msg["ring"]["path"], int(msg["ring"]["slots"]), int(msg["ring"]["slotBytes"]), _device(msg["device"], 0))
                else:
                    n, h, w = int(msg["n"]), int(msg["h"]), int(msg["w"])
                    L, ab, cls = ring.batch(int(msg["slot"]), n, h, w)
                    if ring.device.type == "cuda":
                        torch.cuda.synchronize()
                    else:
                        L, ab, cls = L.clone(), ab.clone(), cls.clone()
                ch.reply({"id": rid, "ok": True})
            elif op in ("gather", "allgather"):
                ch.reply({"id": rid, "ok": True, **_collective(op, msg)})
            elif op == "quit":
                ch.reply({"id": rid, "ok": True})
                return
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as e:  # noqa: BLE001 - every failure goes back to Node as a reply
            fail(e, rid)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    ch = Channel()
    # Nothing but replies may reach fd 3; stray prints go to stderr.
    sys.stdout = sys.stderr
    try:
        serve(ch)
    finally:
        try:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - a broken group cannot be destroyed cleanly; the process ends anyway
            pass
