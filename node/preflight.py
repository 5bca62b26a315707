"""Checks a volunteer's machine before the daemon loads torch: a CPU the torch build cannot run must be said
in one line, not as a crash (an illegal instruction kills the process with no Python traceback at all)."""

from __future__ import annotations

import ctypes
import mmap
import platform
import struct
import sys
from pathlib import Path

from protocol.errors import PermanentError

# cpuid(leaf=edi, subleaf=esi) → four uint32 at rdx (eax, ebx, ecx, edx); rbx is callee-saved, so kept.
_CPUID = bytes.fromhex(
    "53"  # push rbx
    "4989d0"  # mov r8, rdx
    "89f8"  # mov eax, edi
    "89f1"  # mov ecx, esi
    "0fa2"  # cpuid
    "418900"  # mov [r8], eax
    "41895804"  # mov [r8+4], ebx
    "41894808"  # mov [r8+8], ecx
    "4189500c"  # mov [r8+12], edx
    "5b"  # pop rbx
    "c3"  # ret
)


class UnsupportedMachine(PermanentError):
    """This machine cannot run the torch build volunteers use."""


def check_cpu() -> None:
    """Raises UnsupportedMachine on an x86-64 CPU without AVX2 and FMA, which this torch build requires (it
    stops on an illegal instruction). Asks the CPU itself: under an emulator /proc/cpuinfo describes the host."""
    if platform.machine() != "x86_64" or sys.platform != "linux":
        return
    try:
        features = _features()
    except OSError:  # no executable memory here (SELinux deny_execmem, some containers): ask the kernel instead
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
        features = {"AVX2": " avx2" in flags, "FMA": " fma" in flags}
    missing = [name for name, present in features.items() if not present]
    if missing:
        raise UnsupportedMachine(
            f"this CPU lacks {' and '.join(missing)}, which the torch build volunteers use requires "
            "(x86-64 machines from Intel Haswell or AMD Zen on); it cannot train or verify here"
        )


def _features() -> dict[str, bool]:
    max_leaf = _cpuid(0)[0]
    fma = bool(_cpuid(1)[2] >> 12 & 1)
    avx2 = max_leaf >= 7 and bool(_cpuid(7)[1] >> 5 & 1)
    return {"AVX2": avx2, "FMA": fma}


def _cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    try:
        page.write(_CPUID)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        function = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(address)
        out = ctypes.create_string_buffer(16)
        function(leaf, subleaf, ctypes.addressof(out))
        del function
        return struct.unpack("<4I", out.raw)
    finally:
        page.close()
