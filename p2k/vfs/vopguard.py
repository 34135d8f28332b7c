"""The VOP boundary: nothing but ``OSError`` leaves a file system's operation.

A driver raises ``OSError`` for every error it knows about. Anything else — a ``struct.error``
from an encoder fed a nonsense value, an ``IndexError`` from a damaged map, a plain bug — would
otherwise unwind through namei and the syscall layer, skip their ``OSError`` clean-up, and leave
vnodes referenced and the mount busy. NetBSD's answer to "the file system found something it
cannot handle" is EIO for that operation plus a console message; this is the same: the exception
becomes ``OSError(EIO)`` at the boundary (so every caller's ordinary error path releases what it
holds), a one-line console message names the operation, the traceback is logged when
RUMP_VERBOSE is set, and the kernel counts it (``k.stats()["vop_internal_errors"]``).
"""

from __future__ import annotations

import errno
from types import FunctionType

from p2k.hyper.console import console

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

log = console("p2k.vfs")

CO_GENERATOR = 0x20  # inspect.CO_GENERATOR, without importing inspect (and ast, dis, tokenize) for it

# The driver entry points the generic layer calls; everything named vop_* is one too.
VFS_OPS = ("vfs_start", "vfs_loadvnode", "vfs_stat_inodes", "vfs_statvfs", "vfs_sync", "vfs_unmount", "vfs_root_ino")


def _internal(mp: Any, op: str, exc: BaseException) -> OSError:
    kernel = getattr(mp, "kernel", None)
    if kernel is not None:
        kernel.vop_internal_errors = getattr(kernel, "vop_internal_errors", 0) + 1
    fstype = getattr(mp, "fstype", "?")
    msg = f"{fstype}: {op}: internal error {type(exc).__name__}: {exc}; returning EIO"
    params = getattr(kernel, "params", None)
    if params is not None and getattr(params, "verbose", False):
        import traceback

        log.error("%s\n%s", msg, "".join(traceback.format_exception(exc)))
    else:
        log.warning("%s", msg)
    err = OSError(errno.EIO, msg)
    err.__cause__ = exc
    return err


def wrapped(wrapper: F, fn: Callable[..., Any]) -> F:
    """``functools.wraps(fn)(wrapper)``, its assignments written out for the plain functions
    wrapped here (VOPs, syscalls): importing functools (with the collections package, keyword,
    operator, reprlib it brings) is ~2 ms of every command's start-up, and wraps' general loop
    2.7 us a wrapper, some ninety of which are made at import."""
    w: Any = wrapper
    w.__module__ = fn.__module__
    w.__name__ = fn.__name__
    w.__qualname__ = fn.__qualname__
    w.__doc__ = fn.__doc__
    w.__annotations__ = fn.__annotations__
    w.__dict__.update(fn.__dict__)
    w.__wrapped__ = fn
    return wrapper


def guard(op: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap one driver method (generator methods — readdir — are guarded while they iterate)."""
    if getattr(fn, "__code__", None) is not None and fn.__code__.co_flags & CO_GENERATOR:
        def gen_wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(self, *args, **kwargs)
            except (OSError, GeneratorExit):
                raise
            except Exception as e:  # noqa: BLE001 - the boundary: see the module docstring
                raise _internal(self, op, e) from e
        wrapped(gen_wrapper, fn)
        gen_wrapper._vop_guarded = True  # type: ignore[attr-defined]
        return gen_wrapper
    fixed = _fixed_arity(op, fn)
    if fixed is not None:
        return fixed

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - the boundary: see the module docstring
            raise _internal(self, op, e) from e
    wrapped(wrapper, fn)
    wrapper._vop_guarded = True  # type: ignore[attr-defined]
    return wrapper


_CO_ANY_ARGS = 0x04 | 0x08  # inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


# The fixed-arity guards, one per number of parameters up to four (64 of the 96 VOPs the three
# file systems guard; the hot ones: getattr, lookup, access, read). Written out, not generated:
# compiling one per number of parameters at start-up was 0.4 ms of every command. Their names
# begin with _vop_ so that no VOP parameter can take a name the wrapper uses.
def _fixed1(_vop_fn: Callable[..., Any], _vop_op: str) -> Callable[..., Any]:
    def wrapper(a: Any) -> Any:
        try:
            return _vop_fn(a)
        except OSError:
            raise
        except Exception as _vop_exc:  # noqa: BLE001 - the boundary: see the module docstring
            raise _internal(a, _vop_op, _vop_exc) from _vop_exc
    return wrapper


def _fixed2(_vop_fn: Callable[..., Any], _vop_op: str) -> Callable[..., Any]:
    def wrapper(a: Any, b: Any) -> Any:
        try:
            return _vop_fn(a, b)
        except OSError:
            raise
        except Exception as _vop_exc:  # noqa: BLE001 - the boundary: see the module docstring
            raise _internal(a, _vop_op, _vop_exc) from _vop_exc
    return wrapper


def _fixed3(_vop_fn: Callable[..., Any], _vop_op: str) -> Callable[..., Any]:
    def wrapper(a: Any, b: Any, c: Any) -> Any:
        try:
            return _vop_fn(a, b, c)
        except OSError:
            raise
        except Exception as _vop_exc:  # noqa: BLE001 - the boundary: see the module docstring
            raise _internal(a, _vop_op, _vop_exc) from _vop_exc
    return wrapper


def _fixed4(_vop_fn: Callable[..., Any], _vop_op: str) -> Callable[..., Any]:
    def wrapper(a: Any, b: Any, c: Any, d: Any) -> Any:
        try:
            return _vop_fn(a, b, c, d)
        except OSError:
            raise
        except Exception as _vop_exc:  # noqa: BLE001 - the boundary: see the module docstring
            raise _internal(a, _vop_op, _vop_exc) from _vop_exc
    return wrapper


_FIXED = (None, _fixed1, _fixed2, _fixed3, _fixed4)


def _fixed_arity(op: str, fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """The guard for a method whose parameters are plain positional ones (most VOPs), written
    with exactly those parameters: a ``*args, **kwargs`` wrapper costs a tuple and a dict per
    call, 140 ns against 55 here, and a stat walk by path makes five VOP calls per entry
    (measured: walks 6-14% faster). The same names, given to the wrapper's parameters with
    ``CodeType.replace`` (names only label the slots the code uses), so keyword calls still
    bind. None for any other signature (defaults, ``*args``, keyword-only, more than four),
    which gets the general wrapper. The parameters are read from the code object: ``inspect``
    costs 4 ms to import, and every command guards some ninety VOPs at import."""
    code = getattr(fn, "__code__", None)
    if (code is None or code.co_flags & _CO_ANY_ARGS or code.co_kwonlyargcount or code.co_posonlyargcount
            or getattr(fn, "__defaults__", None) or getattr(fn, "__wrapped__", None) is not None):
        return None
    names = code.co_varnames[:code.co_argcount]
    if not 0 < len(names) < len(_FIXED) or any(n.startswith("_vop_") for n in names):
        return None
    made = _FIXED[len(names)](fn, op)  # type: ignore[misc]  # 0 < len(names): never the None
    code = made.__code__
    code = code.replace(co_varnames=(*names, *code.co_varnames[len(names):]))
    wrapper = wrapped(FunctionType(code, made.__globals__, fn.__name__, None, made.__closure__), fn)
    wrapper._vop_guarded = True  # type: ignore[attr-defined]
    return wrapper


def guard_class(cls: type) -> None:
    """Guard every VOP and VFS entry point ``cls`` has (its own or its mixins'), once each."""
    for name in dir(cls):
        if not (name.startswith("vop_") or name in VFS_OPS):
            continue
        fn = getattr(cls, name, None)
        if not callable(fn) or getattr(fn, "_vop_guarded", False):
            continue
        setattr(cls, name, guard(name, fn))
