"""p2k.slotted and p2k.ondisk.Record stand in for dataclasses on the start-up path: they must keep
a dataclass's contract (constructor by position or keyword, == and repr by field, frozen means
immutable and hashable, mutable means unhashable) for the classes that moved to them."""

from __future__ import annotations

import copy
import pickle

import pytest

from p2k.hyper.params import KernelParams
from p2k.ondisk import U16, U32, Record, define
from p2k.vfs.lwproc import Cred
from p2k.vfs.vattr import AclVattr, SetAttr, Vattr


class Pair(Record):
    a: U32
    b: U16


def test_record_constructor_eq_repr_hash() -> None:
    assert Pair(1, b=2) == Pair(a=1, b=2) == Pair.decode(Pair(1, 2).encode())
    assert Pair(1, 2) != Pair(1, 3)
    assert repr(Pair(1, 2)) == "Pair(a=1, b=2)"
    with pytest.raises(TypeError):
        Pair(1)  # type: ignore[call-arg]  # a field left out is an error, as in a dataclass
    with pytest.raises(TypeError):
        hash(Pair(1, 2))
    assert Pair.__init__.__code__.co_filename == "<record Pair>"


def test_define_names_its_functions() -> None:
    scope: dict[str, object] = {"k": 3}
    define("def f(x):\n    return x * k\n", "<generated f>", scope)
    f = scope["f"]
    assert callable(f) and f(2) == 6 and f.__code__.co_filename == "<generated f>"  # type: ignore[attr-defined]


def test_frozen_is_immutable_hashable_and_pickles() -> None:
    c = Cred(1000, 1000, (5,))
    assert c == Cred(1000, 1000, (5,)) and hash(c) == hash(Cred(1000, 1000, (5,))) and c != Cred(1000, 1000)
    assert {c: 1}[Cred(1000, 1000, (5,))] == 1
    with pytest.raises(AttributeError):
        c.uid = 0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del c.gid
    for obj in (c, KernelParams(ncpu=4, memlimit=1 << 20)):
        assert pickle.loads(pickle.dumps(obj)) == obj == copy.deepcopy(obj)
    assert repr(KernelParams()).startswith("KernelParams(ncpu=")


def test_slotted_is_mutable_compared_by_value_and_unhashable() -> None:
    va = Vattr(0o100644, 1, 0, 0, 5, 12)
    assert va == Vattr(0o100644, 1, 0, 0, 5, 12, blksize=4096) and va != Vattr(0o100644, 1, 0, 0, 6, 12)
    va.size = 6
    assert va.size == 6
    with pytest.raises(AttributeError):
        va.colour = 1  # type: ignore[attr-defined]  # slots: a typo is not a new field
    with pytest.raises(TypeError):
        hash(va)
    acl = AclVattr(0o100640, 1, 0, 0, 5, 12, acl=[(1, 2, 6)])
    assert acl != Vattr(0o100640, 1, 0, 0, 5, 12)  # another class is never equal
    assert repr(acl).endswith("fsid=0, acl=[(1, 2, 6)])")
    assert SetAttr().extra == {} and SetAttr().extra is not SetAttr().extra
