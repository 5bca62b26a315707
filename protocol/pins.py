"""Pinned kernel dispatch: one numeric class for every x86-64 AVX2 machine.

The same torch build computes different bits on different CPUs because its libraries pick kernels at run
time: ATen by ISA (softmax, cross-entropy, attention), oneDNN by ISA (convolutions, GELU), and MKL by ISA
*and vendor* (sgemm, exp/log/erf/sqrt take other paths on AMD than on Intel). Left alone, an honest
volunteer on another CPU fails exact replay on every segment. Pinned, an AVX-512 AMD host, an Intel Haswell
and an AMD EPYC-Rome gave the same bits for every model family (measured under qemu-user: bench
honest-matrix). The pins must be in force before torch loads its libraries, so this module imports no
torch, and `protocol/__init__.py` applies them: every room that trains or replays imports `protocol` first.

MKL's vendor check is the one thing no setting turns off; `MKL_CBWR=COMPATIBLE` avoids it only by falling
back to SSE2 code (2.1× slower on the transformer). Instead, a 4.2 KB shared object that defines
`mkl_serv_intel_cpu_true()` as 1 is loaded into the global symbol scope before torch: the MKL inside
libtorch calls that symbol through its PLT, so it finds ours first and takes the Intel AVX2 paths on any
vendor. The object is written here byte by byte (no compiler needed on a volunteer's machine).

`SHARDWORK_NUMERICS=native` leaves every library to its own dispatch: the fastest kernels of this CPU, in
a numeric class of its own (benches compare the two; tests use it as "another machine").
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

PROFILE = "x86-64-avx2"  # the pinned class's name, recorded in every trace manifest
NATIVE = "native"
ENV_SWITCH = "SHARDWORK_NUMERICS"
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
}
_MKL_VENDOR_SYMBOL = b"mkl_serv_intel_cpu_true"

_state: dict[str, str] = {}


def apply_pins() -> str:
    """Pins kernel dispatch for this process (idempotent); returns the profile in force: PROFILE, NATIVE,
    or `late:PROFILE` when torch was already loaded (the pins may not have taken; the fingerprint tells)."""
    if "profile" in _state:
        return _state["profile"]
    if os.environ.get(ENV_SWITCH, PROFILE) == NATIVE or platform.machine() not in ("x86_64", "AMD64"):
        _state["profile"] = NATIVE
        return NATIVE
    late = "torch" in sys.modules
    os.environ.update(PINNED_ENV)  # the user's shell must not choose the numeric class
    if sys.platform == "linux":
        _load_vendor_shim()
    _state["profile"] = f"late:{PROFILE}" if late else PROFILE
    return _state["profile"]


def profile() -> str:
    return _state.get("profile") or apply_pins()


def _load_vendor_shim() -> None:
    # An anonymous in-memory file: nothing on disk that another local user could swap for their own code
    # between our write and the loader's read (a shared, predictable /tmp path would allow exactly that).
    fd = os.memfd_create("shardwork-mkl-intel-paths", os.MFD_CLOEXEC)
    try:
        os.write(fd, vendor_shim_image())
        ctypes.CDLL(f"/proc/self/fd/{fd}", mode=ctypes.RTLD_GLOBAL)
    finally:
        os.close(fd)  # the loader keeps its own mapping


def vendor_shim_image() -> bytes:
    """An ELF64 x86-64 shared object exporting `int mkl_serv_intel_cpu_true(void) { return 1; }`.

    Two segments: headers, symbols and code read+execute at 0; the dynamic section read+write at 0x1000 (the
    loader may rewrite its addresses in place). A PT_GNU_STACK header keeps the stack non-executable.
    """
    page = 0x1000
    ehdr_size, phdr_size, phnum = 64, 56, 4
    hash_off = ehdr_size + phdr_size * phnum  # 288
    hash_table = struct.pack("<4I", 1, 2, 1, 0) + struct.pack("<I", 0)  # nbucket=1, nchain=2, bucket, chain
    dynstr = b"\0" + _MKL_VENDOR_SYMBOL + b"\0shardwork-mkl-intel-paths.so\0"
    soname_index = 1 + len(_MKL_VENDOR_SYMBOL) + 1
    symtab_off = _align(hash_off + len(hash_table), 8)
    strtab_off = symtab_off + 2 * 24
    text_off = _align(strtab_off + len(dynstr), 16)
    text = bytes([0xB8, 0x01, 0x00, 0x00, 0x00, 0xC3])  # mov eax, 1; ret
    # GLOBAL FUNC, default visibility. There are no section headers; the loader only asks whether the section
    # index is SHN_UNDEF (0), so any other small number marks the symbol as defined here.
    dynsym = bytes(24) + struct.pack("<IBBHQQ", 1, 0x12, 0, 7, text_off, len(text))
    dynamic = b"".join(
        struct.pack("<qQ", tag, value)
        for tag, value in [
            (4, hash_off),  # DT_HASH
            (5, strtab_off),  # DT_STRTAB
            (6, symtab_off),  # DT_SYMTAB
            (10, len(dynstr)),  # DT_STRSZ
            (11, 24),  # DT_SYMENT
            (14, soname_index),  # DT_SONAME
            (0, 0),  # DT_NULL
        ]
    )
    code_end = text_off + len(text)
    phdrs = b"".join(
        [
            struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, code_end, code_end, page),  # PT_LOAD r-x
            struct.pack("<IIQQQQQQ", 1, 6, page, page, page, len(dynamic), len(dynamic), page),  # PT_LOAD rw-
            struct.pack("<IIQQQQQQ", 2, 6, page, page, page, len(dynamic), len(dynamic), 8),  # PT_DYNAMIC
            struct.pack("<IIQQQQQQ", 0x6474E551, 6, 0, 0, 0, 0, 0, 16),  # PT_GNU_STACK rw-
        ]
    )
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, ehdr_size, 0, 0, ehdr_size, phdr_size, phnum, 64, 0, 0
    )  # ET_DYN, EM_X86_64, no entry point, no section headers
    image = bytearray(page + len(dynamic))
    for offset, blob in [
        (0, ehdr),
        (ehdr_size, phdrs),
        (hash_off, hash_table),
        (symtab_off, dynsym),
        (strtab_off, dynstr),
        (text_off, text),
        (page, dynamic),
    ]:
        image[offset : offset + len(blob)] = blob
    return bytes(image)


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to
