"""The kernels a device profile times, per backend: numpy on the host CPU, torch on CUDA, Ascend NPU or CPU.

Entry points: ``numpy_backend(device)`` and ``torch_backend(device)`` return a ``Backend``. torch (and
torch_npu) are imported here only, when asked; a missing one is a ``FleetwiseError`` naming the extra.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol

import numpy as np

from fleetwise.errors import FleetwiseError, SpecError

Run = Callable[[], object]
Entry = dict[str, Any]


class Backend(Protocol):
    """One way of running kernels on one device; every callable it returns runs one kernel (asynchronously)."""

    name: str
    device_kind: str  # "cpu", "cuda" or "npu"
    device_name: str
    device_count: int
    libraries: dict[str, str]
    gemm_op: str
    gemm_precisions: tuple[str, ...]
    has_attention: bool
    attention_kernel: str

    def sync(self) -> None: ...
    def gemm(self, m: int, n: int, k: int, precision: str) -> Run: ...
    def attention(self, batch: int, heads: int, seq: int, head_dim: int) -> tuple[Run, Run]: ...
    def streams(self, nbytes: int) -> dict[str, tuple[Run, int]]: ...
    def tiny_ops(self) -> dict[str, Run]: ...
    def collectives(self, chip: str, conditions: Entry, quick: bool) -> tuple[list[Entry], str]: ...


def host_cpu_name() -> str:
    """The host CPU's model name and core count, e.g. 'host CPU: AMD EPYC 7B13 (2 cores)'."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"host CPU: {model} ({os.cpu_count() or 1} cores)"


def _versions(*names: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return out


class NumpyBackend:
    """numpy on the host CPU: BLAS GEMMs in fp32, stream copies and adds, per-call overhead. No attention kernel."""

    name = "numpy"
    device_kind = "cpu"
    device_count = 1
    gemm_op = "numpy.matmul (BLAS)"
    gemm_precisions: tuple[str, ...] = ("fp32",)
    has_attention = False
    attention_kernel = ""

    def __init__(self) -> None:
        self.device_name = host_cpu_name()
        self.libraries = _versions("numpy")
        cfg: Any = getattr(getattr(np, "__config__", None), "CONFIG", None)  # numpy >= 1.25: build info
        blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
        if isinstance(blas, dict) and blas.get("name"):
            self.libraries["blas"] = f"{blas['name']} {blas.get('version', '')}".strip()
        self._rng = np.random.default_rng(0)

    def sync(self) -> None:
        """numpy runs synchronously: nothing to wait for."""

    def gemm(self, m: int, n: int, k: int, precision: str) -> Run:
        a = self._rng.standard_normal((m, k), dtype=np.float32)
        b = self._rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        return lambda: np.matmul(a, b, out=c)

    def attention(self, batch: int, heads: int, seq: int, head_dim: int) -> tuple[Run, Run]:
        raise FleetwiseError("the numpy backend has no attention kernel")

    def streams(self, nbytes: int) -> dict[str, tuple[Run, int]]:
        n = nbytes // 4
        a, b, c = (np.ones(n, dtype=np.float32) for _ in range(3))
        return {"numpy.copyto fp32 (1 read + 1 write)": (lambda: np.copyto(b, a), 2 * 4 * n),
                "numpy.add fp32 (2 reads + 1 write)": (lambda: np.add(a, b, out=c), 3 * 4 * n)}

    def tiny_ops(self) -> dict[str, Run]:
        x, y = np.ones(1, dtype=np.float32), np.empty(1, dtype=np.float32)
        return {"numpy.add on one element (Python call + ufunc dispatch)": lambda: np.add(x, 1.0, out=y)}

    def collectives(self, chip: str, conditions: Entry, quick: bool) -> tuple[list[Entry], str]:
        return [], "the numpy backend runs one host process (collectives need torch.distributed over > 1 device)"


def numpy_backend(device: str | None) -> Backend:
    """The host CPU through numpy; ``device`` must be None or ``cpu``."""
    if device not in (None, "cpu"):
        raise SpecError(f"--device: the numpy backend measures the host CPU only (allowed: cpu; got {device!r}); "
                        "use --backend torch for cuda or npu")
    return NumpyBackend()


def _import_torch(device: str) -> Any:
    try:
        import torch
    except ImportError:
        raise FleetwiseError("the torch backend needs PyTorch: pip install 'fleetwise[calibrate]' (or use "
                             "--backend numpy for the host CPU)") from None
    if device == "npu":
        try:
            import torch_npu  # noqa: F401  # registers torch.npu
        except ImportError:
            raise FleetwiseError("--device npu needs torch_npu (Ascend's PyTorch adapter) installed next to "
                                 "torch") from None
    mod = getattr(torch, device, None) if device != "cpu" else None
    if device != "cpu" and (mod is None or not mod.is_available()):
        raise FleetwiseError(f"--device {device}: torch sees no {device} device on this machine (allowed: "
                             "cuda, npu, cpu)")
    return torch


class TorchBackend:
    """torch on one device: matmul in bf16/fp16 (fp32 on CPU), SDPA attention, copies, adds, launch overhead,
    and NCCL/HCCL all-reduce sweeps when more than one device is visible."""

    name = "torch"
    has_attention = True

    def __init__(self, device: str) -> None:
        self.torch = torch = _import_torch(device)
        self.device_kind = device
        self.dev = torch.device(device if device == "cpu" else f"{device}:0")
        mod: Any = getattr(torch, device, None)
        self.device_count = int(mod.device_count()) if device != "cpu" else 1
        self.device_name = str(mod.get_device_name(0)) if device != "cpu" else host_cpu_name()
        self.libraries = _versions("torch", "torch_npu", "numpy")
        if device == "cuda":
            self.libraries["cuda"] = str(torch.version.cuda)
            self.libraries["cudnn"] = str(torch.backends.cudnn.version())
        self.gemm_op = "torch.matmul"
        self.gemm_precisions: tuple[str, ...] = ("bf16", "fp16") if device != "cpu" else ("fp32",)
        self.attention_kernel = f"torch.nn.functional.scaled_dot_product_attention (torch {torch.__version__})"
        self._sync: Callable[[], None] = getattr(mod, "synchronize", None) or (lambda: None)

    def sync(self) -> None:
        self._sync()

    def _dtype(self, precision: str) -> Any:
        return {"bf16": self.torch.bfloat16, "fp16": self.torch.float16, "fp32": self.torch.float32}[precision]

    def gemm(self, m: int, n: int, k: int, precision: str) -> Run:
        t, dt = self.torch, self._dtype(precision)
        a, b = t.randn(m, k, dtype=dt, device=self.dev), t.randn(k, n, dtype=dt, device=self.dev)
        c = t.empty(m, n, dtype=dt, device=self.dev)
        return lambda: t.matmul(a, b, out=c)

    def attention(self, batch: int, heads: int, seq: int, head_dim: int) -> tuple[Run, Run]:
        t = self.torch
        dt = t.bfloat16 if self.device_kind != "cpu" else t.float32
        q, k, v = (t.randn(batch, heads, seq, head_dim, dtype=dt, device=self.dev, requires_grad=True)
                   for _ in range(3))
        grad = t.randn(batch, heads, seq, head_dim, dtype=dt, device=self.dev)
        sdpa = t.nn.functional.scaled_dot_product_attention

        def fwd() -> object:
            with t.no_grad():
                return sdpa(q, k, v)

        def fwd_bwd() -> object:
            q.grad = k.grad = v.grad = None  # fresh gradients: no accumulation kernel in the timed backward
            out = sdpa(q, k, v)
            out.backward(grad)
            return out

        return fwd, fwd_bwd

    def streams(self, nbytes: int) -> dict[str, tuple[Run, int]]:
        t = self.torch
        n = nbytes // 2
        a, b, c = (t.ones(n, dtype=t.bfloat16, device=self.dev) for _ in range(3))
        return {"torch copy_ bf16 (1 read + 1 write)": (lambda: b.copy_(a), 2 * 2 * n),
                "torch.add bf16 (2 reads + 1 write)": (lambda: t.add(a, b, out=c), 3 * 2 * n)}

    def tiny_ops(self) -> dict[str, Run]:
        t = self.torch
        x, y = t.ones(1, device=self.dev), t.empty(1, device=self.dev)
        return {"torch.add on one element (eager launch, back to back)": lambda: t.add(x, 1.0, out=y)}

    def collectives(self, chip: str, conditions: Entry, quick: bool) -> tuple[list[Entry], str]:
        if self.device_count < 2:
            return [], (f"{self.device_count} {self.device_kind} device visible; collectives need > 1 "
                        "(torch.distributed over several devices)")
        from fleetwise.calibrate.collectives import all_reduce_sweep

        return [all_reduce_sweep(self.torch, self.device_kind, self.device_count, chip, conditions, quick)], ""


def torch_backend(device: str) -> Backend:
    """torch on ``device`` (cuda, npu or cpu); a FleetwiseError when torch or the device is missing."""
    if device not in ("cuda", "npu", "cpu"):
        raise SpecError(f"--device: allowed cuda, npu, cpu (got {device!r})")
    return TorchBackend(device)


