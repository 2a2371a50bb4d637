"""What this process may use of the CPU: its share of cores (the cgroup quota), native bf16, and whether
its int8 kernels sum products exactly."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

#: The AVX-512 subsets ONNX Runtime's int8 kernels for AVX-512 need (MLAS: "AVX512 core").
_AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl"})
_X86 = ("x86_64", "amd64", "i386", "i686")


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by the cgroup quota (v2 `cpu.max`, or v1 `cfs_quota_us`); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cpus(root: Path = Path("/sys/fs/cgroup")) -> int:
    """Threads worth running: the cores this process may be scheduled on, capped by the cgroup quota
    (Lambda grants vCPUs by memory size while the host shows all of its cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_limit(root)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (x86 `flags`, Arm `Features`); empty where unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's name as Linux gives it (x86 `model name`); empty where it gives none."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return ""
    return next((line.partition(":")[2].strip() for line in lines if line.startswith("model name")), "")


def int8_products_exact(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether ONNX Runtime's int8 GEMMs on this CPU add up every u8 x s8 product exactly.

    Its x86 kernels, as MLAS picks them: with AVX-512 (core), the AVX512-VNNI kernel if the CPU has it,
    else one built on VPMADDUBSW; without AVX-512, the AVX-VNNI kernel if the CPU has it, else the AVX2
    one, also on VPMADDUBSW (AMX, where present and granted, comes with AVX512-VNNI). VPMADDUBSW adds two
    neighbouring products into 16 bits with saturation: with 8-bit weights (up to 127) and activations
    up to 255 a pair can pass 32767 and is clipped. The VNNI kernels, and Arm's (16-bit products added
    pairwise into 32 bits, or dot products), sum exactly. So: AMD before Zen 4 and Intel before
    Cascade Lake clip; later ones and Graviton do not.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in _X86:
        return True
    flags = cpu_flags() if flags is None else flags
    if flags >= _AVX512_CORE:
        return "avx512_vnni" in flags  # MLAS's AVX-512 kernels take over from the AVX-VNNI one
    return "avx_vnni" in flags


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: the instructions that make a bf16 forward pass faster than fp32."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags
