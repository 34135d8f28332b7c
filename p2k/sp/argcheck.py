"""Argument checking for remote calls, from the annotations of the local ``Syscalls`` methods.

A local caller who passes a list where a path belongs gets a TypeError somewhere inside the kernel,
perhaps after a vnode was referenced; that is a bug in the caller's program. A remote caller's
arguments are a stranger's input, so the server checks them against the same signature *before*
the call, and answers EINVAL instead of letting a half-done call leave a reference behind.
"""

from __future__ import annotations

import errno
import inspect
from functools import cache
from typing import Any

from p2k.vfs.syscalls import Syscalls
from p2k.vfs.vnode import Vnode

_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "bool": (bool, int),
    "float": (float, int),
    "str": (str,),
    "bytes": (bytes,),
    "bytearray": (bytes, bytearray),
    "memoryview": (bytes, memoryview),
    "None": (type(None),),
    "Vnode": (Vnode,),
    "Any": (object,),
}


def _allowed(annotation: object) -> tuple[type, ...] | None:
    """The types a parameter takes; None when the annotation is beyond this little parser (then
    anything is let through, and the kernel's own checks decide)."""
    if not isinstance(annotation, str):
        return None
    out: list[type] = []
    for part in annotation.split(" | "):
        part = part.strip()
        base = part.split("[", 1)[0]
        if base == "dict":
            out.append(dict)
        elif base == "tuple":
            out += [tuple, list]
        elif base in _TYPES:
            out += _TYPES[base]
        else:
            return None
    return tuple(out)


@cache
def _signature(name: str) -> tuple[inspect.Signature, dict[str, tuple[type, ...] | None]]:
    sig = inspect.signature(getattr(Syscalls, name))
    params = list(sig.parameters.values())[1:]  # without self
    sig = sig.replace(parameters=params)
    return sig, {p.name: _allowed(p.annotation) for p in params}


def check_args(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """OSError(EINVAL) unless ``args``/``kwargs`` fit the signature of ``Syscalls.<name>``."""
    sig, allowed = _signature(name)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise OSError(errno.EINVAL, f"{name}: {e}") from None
    for pname, value in bound.arguments.items():
        types = allowed.get(pname)
        if types is not None and not isinstance(value, types):
            raise OSError(errno.EINVAL, f"{name}: bad {pname} ({type(value).__name__})")
        if isinstance(value, (list, tuple)) and not all(_flat_numbers(x) for x in value):
            raise OSError(errno.EINVAL, f"{name}: bad {pname}")


def _flat_numbers(x: object) -> bool:
    """A number, or a short tuple of integers (an ACL entry: tag, id, perm)."""
    if isinstance(x, int | float):
        return True
    return isinstance(x, (list, tuple)) and len(x) <= 3 and all(type(y) is int for y in x)
