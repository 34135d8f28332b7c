"""Kernel parameters, as rump(3) and rumpkernel(7) name them.

Each parameter is read once, when a kernel is created; an explicit ``Kernel(...)`` argument wins over
the environment. A bad value is refused before anything is built, so a typo in ``RUMP_MEMLIMIT``
never silently yields an unbounded kernel.
"""

from __future__ import annotations

import os

from p2k.slotted import Frozen

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_NCPU = 2
DEFAULT_NVNODES = 1024

_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class ParamError(ValueError):
    """A kernel parameter has a value the kernel refuses; the message names both."""


def parse_memsize(text: str, name: str = "RUMP_MEMLIMIT") -> int:
    """Bytes with one optional k/m/g suffix, as rumpuser's RUMP_MEMLIMIT takes them."""
    s = str(text).strip().lower()
    mult = 1
    if s and s[-1] in _SUFFIX:
        mult = _SUFFIX[s[-1]]
        s = s[:-1]
    if not s.isdigit():
        raise ParamError(f"{name}: invalid value {text!r} (bytes with optional k/m/g suffix)")
    value = int(s) * mult
    if value <= 0:
        raise ParamError(f"{name}: invalid value {text!r} (must be positive)")
    return value


def _parse_ncpu(text: str | int) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().lower()
        if s == "host":
            return os.cpu_count() or 1
        if not s.isdigit():
            raise ParamError(f"RUMP_NCPU: invalid value {text!r} (integer >= 1 or 'host')")
        value = int(s)
    if value < 1:
        raise ParamError(f"RUMP_NCPU: invalid value {text!r} (integer >= 1 or 'host')")
    return value


def _parse_count(text: str | int, name: str, minimum: int) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip()
        if not s.isdigit():
            raise ParamError(f"{name}: invalid value {text!r} (integer >= {minimum})")
        value = int(s)
    if value < minimum:
        raise ParamError(f"{name}: invalid value {text!r} (integer >= {minimum})")
    return value


def _parse_bool(text: str | int | bool, name: str) -> bool:
    if isinstance(text, bool):
        return text
    s = str(text).strip().lower()
    if s in ("", "0", "no", "false", "off"):
        return False
    if s in ("1", "yes", "true", "on") or s.isdigit():
        return True
    raise ParamError(f"{name}: invalid value {text!r} (0 or 1)")


class KernelParams(Frozen):
    """The parameters a kernel was booted with; immutable because they are read exactly once."""

    __slots__ = ("ncpu", "verbose", "threads", "memlimit", "nvnodes")
    ncpu: int
    verbose: bool
    threads: bool
    memlimit: int | None
    nvnodes: int

    def __init__(self, ncpu: int = DEFAULT_NCPU, verbose: bool = False, threads: bool = True,
                 memlimit: int | None = None, nvnodes: int = DEFAULT_NVNODES) -> None:
        self._set(ncpu=ncpu, verbose=verbose, threads=threads, memlimit=memlimit, nvnodes=nvnodes)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        ncpu: int | str | None = None,
        verbose: bool | int | str | None = None,
        threads: bool | int | str | None = None,
        memlimit: int | str | None = None,
        nvnodes: int | str | None = None,
    ) -> KernelParams:
        env = os.environ if env is None else env

        def pick(arg: object, var: str) -> object:
            return arg if arg is not None else env.get(var)

        raw_ncpu = pick(ncpu, "RUMP_NCPU")
        raw_verbose = pick(verbose, "RUMP_VERBOSE")
        raw_threads = pick(threads, "RUMP_THREADS")
        raw_mem = pick(memlimit, "RUMP_MEMLIMIT")
        raw_nv = pick(nvnodes, "RUMP_NVNODES")
        mem: int | None
        if raw_mem is None or raw_mem == "":
            mem = None
        elif isinstance(raw_mem, int) and not isinstance(raw_mem, bool):
            if raw_mem <= 0:
                raise ParamError(f"RUMP_MEMLIMIT: invalid value {raw_mem!r} (must be positive)")
            mem = raw_mem
        else:
            mem = parse_memsize(str(raw_mem))
        return cls(
            ncpu=DEFAULT_NCPU if raw_ncpu in (None, "") else _parse_ncpu(raw_ncpu),  # type: ignore[arg-type]
            verbose=False if raw_verbose is None else _parse_bool(raw_verbose, "RUMP_VERBOSE"),  # type: ignore[arg-type]
            threads=True if raw_threads is None else _parse_bool(raw_threads, "RUMP_THREADS"),  # type: ignore[arg-type]
            memlimit=mem,
            nvnodes=DEFAULT_NVNODES if raw_nv in (None, "") else _parse_count(raw_nv, "RUMP_NVNODES", 1),  # type: ignore[arg-type]
        )
