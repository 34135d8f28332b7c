"""The VOP boundary: whatever a driver method raises that is not ``OSError`` becomes EIO for that
call and is counted, whichever wrapper the method's signature gets (the fixed-arity one for plain
parameters, the general one for defaults and keyword-only parameters, the generator one for
readdir); arguments bind by position and by keyword as they would unwrapped."""

from __future__ import annotations

import errno
import inspect
from collections.abc import Iterator

import pytest

import p2k
from p2k.vfs.mount import Mount
from p2k.vfs.vattr import Dirent


class _Toy(Mount):
    fstype = "toy"

    def vop_lookup(self, dvp: object, name: bytes) -> int:  # type: ignore[override]
        if name == b"bug":
            raise ValueError("a driver bug")
        if name == b"missing":
            raise FileNotFoundError(errno.ENOENT, "no such entry")
        return len(name)

    def vop_fsync(self, vp: object, dataonly: bool = False) -> None:  # type: ignore[override]
        if dataonly:
            raise KeyError("another bug")

    def vop_readdir(self, vp: object, cookie: int) -> Iterator[list[Dirent]]:  # type: ignore[override]
        yield [Dirent(3, 8, b"a", 1)]
        raise IndexError("a damaged map")


@pytest.fixture
def toy() -> Iterator[_Toy]:
    k = p2k.Kernel(env={})
    try:
        yield _Toy(k, 0, {})
    finally:
        k.halt()


def test_plain_signature_gets_the_fixed_wrapper(toy: _Toy) -> None:
    assert toy.vop_lookup(None, b"abc") == 3
    assert toy.vop_lookup(dvp=None, name=b"abcd") == 4  # keywords bind to the same names
    assert type(toy).vop_lookup.__name__ == "vop_lookup"
    assert "*" not in str(inspect.signature(type(toy).vop_lookup, follow_wrapped=False))
    with pytest.raises(FileNotFoundError):
        toy.vop_lookup(None, b"missing")  # an OSError passes unchanged
    with pytest.raises(OSError) as ei:
        toy.vop_lookup(None, b"bug")
    assert ei.value.errno == errno.EIO and isinstance(ei.value.__cause__, ValueError)
    assert "vop_lookup" in str(ei.value) and toy.kernel.vop_internal_errors == 1


def test_defaults_and_generators_are_guarded_too(toy: _Toy) -> None:
    toy.vop_fsync(None)
    with pytest.raises(OSError) as ei:
        toy.vop_fsync(None, dataonly=True)
    assert ei.value.errno == errno.EIO
    it = toy.vop_readdir(None, 0)
    assert next(it)[0].name == b"a"
    with pytest.raises(OSError) as ei:
        next(it)
    assert ei.value.errno == errno.EIO and toy.kernel.vop_internal_errors == 2
