"""The hypercall layer (NetBSD's rumpuser): the only code in p2k that touches the host."""

from p2k.hyper.clock import monotonic_ns, now_ns, random_bytes, random_u32
from p2k.hyper.fileobj import FileObjectBackend
from p2k.hyper.hostio import HostFile
from p2k.hyper.mem import MemAccount
from p2k.hyper.params import DEFAULT_NCPU, DEFAULT_NVNODES, KernelParams, ParamError, parse_memsize

HostBackend = HostFile | FileObjectBackend
"""What a device does its I/O through: a host file, or a file object (an fsspec-opened image)."""

__all__ = [
    "DEFAULT_NCPU",
    "DEFAULT_NVNODES",
    "FileObjectBackend",
    "HostBackend",
    "HostFile",
    "KernelParams",
    "MemAccount",
    "ParamError",
    "monotonic_ns",
    "now_ns",
    "parse_memsize",
    "random_bytes",
    "random_u32",
]
