"""The hypercall layer (NetBSD's rumpuser): the only code in p2k that touches the host."""

from p2k.hyper.backend import Backend, BackendIO, FileObjBackend, RawFileBackend, Window
from p2k.hyper.clock import monotonic_ns, now_ns, random_bytes, random_u32
from p2k.hyper.containers import container_kind, open_backend
from p2k.hyper.hostio import HostFile
from p2k.hyper.mem import MemAccount
from p2k.hyper.params import DEFAULT_NCPU, DEFAULT_NVNODES, KernelParams, ParamError, parse_memsize

__all__ = [
    "DEFAULT_NCPU",
    "DEFAULT_NVNODES",
    "Backend",
    "BackendIO",
    "FileObjBackend",
    "HostFile",
    "KernelParams",
    "MemAccount",
    "container_kind",
    "ParamError",
    "RawFileBackend",
    "Window",
    "monotonic_ns",
    "now_ns",
    "open_backend",
    "parse_memsize",
    "random_bytes",
    "random_u32",
]
