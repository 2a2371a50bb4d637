"""The benchmark's Lambda-CPU phase takes AMX away from itself and the servers it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from handler.tools import amx_off

pytestmark = [
    pytest.mark.skipif(not amx_off.supported(), reason="AMX exists on Linux x86_64 only"),
    pytest.mark.slow,  # each starts an interpreter (well under a second)
]

ASK = "from handler.tools import amx_off; print(amx_off.amx_granted())"


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_process_that_denied_amx_and_its_children_are_refused_it() -> None:
    code = (
        "import subprocess, sys\n"
        "from handler.tools import amx_off\n"
        "amx_off.deny_amx()\n"
        "print(amx_off.amx_granted())\n"
        f"child = subprocess.run([sys.executable, '-c', {ASK!r}], capture_output=True, text=True)\n"
        "print(child.stdout.strip())\n"
    )
    assert run(code).splitlines() == ["False", "False"]


@pytest.mark.skipif("amx_int8" not in Path("/proc/cpuinfo").read_text(), reason="this CPU has no AMX")
def test_without_the_filter_a_cpu_with_amx_grants_it() -> None:
    # The filter is what makes the difference: the same question is answered yes without it.
    assert run(ASK) == "True"


def test_the_filter_refuses_only_that_request() -> None:
    code = (
        "import ctypes\n"
        "from handler.tools import amx_off\n"
        "amx_off.deny_amx()\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "ARCH_GET_XCOMP_SUPP = 0x1021\n"
        "supported = ctypes.c_uint64()\n"
        "print(libc.syscall(158, ARCH_GET_XCOMP_SUPP, ctypes.byref(supported)))\n"
    )
    assert run(code) == "0"  # arch_prctl's other requests still answer
