"""Tool versions and the hardware a model was exported or benchmarked on."""

from __future__ import annotations

import os
import platform
from importlib import metadata

TOOLS = ("compressor", "torch", "timm", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxslim", "onnxsim",
         "tensorrt", "openvino", "nncf", "numpy")


def tool_versions() -> dict[str, str]:
    """Installed versions of the packages an export depends on (absent ones are left out)."""
    out = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The instruction-set extensions that decide INT8/FP16 speed on x86 (VNNI, AMX, AVX-512 FP16)."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_int8",
              "amx_bf16")
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gpu_info() -> dict | None:
    """``{"name", "compute_capability", "driver_cuda"}`` of CUDA device 0, or ``None`` without one."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
            "cuda": torch.version.cuda}


def environment(threads: int | None = None) -> dict:
    """The environment block of a benchmark: CPU, cores and threads, GPU, ORT providers, versions."""
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": usable_cores(),
        "threads": threads or usable_cores(),
        "gpu": gpu_info(),
        "os": platform.platform(),
        "ort_providers": providers,
        "versions": tool_versions(),
    }
