"""Take Intel AMX away from this process and every process it starts, as on a CPU without it.

Lambda's hosts have no AMX, and ONNX Runtime's int8 GEMMs use AMX-INT8 wherever the kernel allows it
(measured here, the int8 image tower: 6.3 ms an image at batch 32 with AMX, 10.1 without), so a benchmark
that stands for Lambda's CPUs must not let it. No environment variable of ONNX Runtime turns it off;
what does is the kernel: Linux hands out AMX's tile state only to a process that asks for it
(`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), and ONNX Runtime (MLAS) and oneDNN both ask
and fall back to AVX-512/VNNI when refused. A seccomp filter refuses that one request with EPERM; the
filter is inherited by every child, so servers the benchmark starts see the same CPU.
"""

from __future__ import annotations

import ctypes
import platform
import struct
import sys

_SYS_ARCH_PRCTL = 158  # x86_64
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_AUDIT_ARCH_X86_64 = 0xC000003E
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_EPERM = 1
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
# Classic BPF: load a word of seccomp_data (nr at 0, arch at 4, args[0]'s low half at 16), compare, return.
_LOAD, _JUMP_IF_EQUAL, _RETURN = 0x20, 0x15, 0x06
_FILTER = (
    (_LOAD, 0, 0, 4),
    (_JUMP_IF_EQUAL, 0, 5, _AUDIT_ARCH_X86_64),
    (_LOAD, 0, 0, 0),
    (_JUMP_IF_EQUAL, 0, 3, _SYS_ARCH_PRCTL),
    (_LOAD, 0, 0, 16),
    (_JUMP_IF_EQUAL, 0, 1, _ARCH_REQ_XCOMP_PERM),
    (_RETURN, 0, 0, _SECCOMP_RET_ERRNO | _EPERM),
    (_RETURN, 0, 0, _SECCOMP_RET_ALLOW),
)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def supported() -> bool:
    return sys.platform == "linux" and platform.machine() == "x86_64"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def amx_granted() -> bool:
    """Ask the kernel for AMX's tile state, as ONNX Runtime and oneDNN do (False: no AMX for us)."""
    if not supported():
        return False
    return int(_libc().syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA)) == 0


def deny_amx() -> None:
    """From now on this process and its children are refused AMX. Must run before anything has asked
    for it (a grant already made stays); raises OSError where the filter cannot be installed."""
    if not supported():
        raise OSError(f"refusing AMX needs Linux on x86_64, not {sys.platform} on {platform.machine()}")
    libc = _libc()
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in _FILTER)
    buffer = ctypes.create_string_buffer(code, len(code))
    program = _SockFprog(len(_FILTER), ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "installing the seccomp filter failed")
    if amx_granted():
        raise OSError("AMX is still granted after the seccomp filter (was it granted before?)")


__all__ = ["amx_granted", "deny_amx", "supported"]
