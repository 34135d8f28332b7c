"""p2k.hints' run-time stand-ins behave as typing's own for what p2k declares with them.

Each named tuple is declared twice, once with typing.NamedTuple and once with the stand-in, from
the same body; every observable behaviour p2k relies on (fields, defaults, methods, docstring,
repr, _replace, _asdict, _make, equality with a plain tuple, pickling, the errors of a bad
declaration) is compared between the two.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import typing

import pytest

from p2k import hints


class TypingPoint(typing.NamedTuple):
    """A point."""

    x: int
    y: int
    label: str = "p"

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    ORIGIN_LABEL = "o"


class HintsPoint(hints.NamedTuple):
    """A point."""

    x: int
    y: int
    label: str = "p"

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)

    ORIGIN_LABEL = "o"


TypingEntry = typing.NamedTuple("TypingEntry", [("ino", int), ("name", bytes)])  # noqa: UP014 - the call form itself
HintsEntry = hints.NamedTuple("HintsEntry", [("ino", int), ("name", bytes)])


def test_the_stand_ins_are_not_typing() -> None:
    assert hints.NamedTuple is not typing.NamedTuple
    assert hints.Protocol is not typing.Protocol
    assert hints.cast is not typing.cast


def test_class_form_matches_typing() -> None:
    tp, hp = TypingPoint, HintsPoint
    assert hp._fields == tp._fields == ("x", "y", "label")
    assert hp._field_defaults == tp._field_defaults == {"label": "p"}
    assert hp.__doc__ == tp.__doc__
    assert hp.__module__ == tp.__module__ == __name__
    assert list(hp.__annotations__) == list(tp.__annotations__)
    assert hp.ORIGIN_LABEL == tp.ORIGIN_LABEL
    assert issubclass(hp, tuple) and hp.__bases__ == tp.__bases__ == (tuple,)
    t, h = tp(3, -4), hp(3, -4)
    assert isinstance(h, tuple) and tuple(h) == tuple(t) == (3, -4, "p") and h == (3, -4, "p")
    assert repr(h).replace("Hints", "") == repr(t).replace("Typing", "") == "Point(x=3, y=-4, label='p')"
    assert h.norm1() == t.norm1() == 7
    assert h._replace(y=1) == t._replace(y=1) == (3, 1, "p")
    assert h._asdict() == t._asdict()
    assert hp._make([1, 2, "q"]) == tp._make([1, 2, "q"])
    assert hp(x=1, y=2, label="k") == tp(x=1, y=2, label="k")
    assert pickle.loads(pickle.dumps(h)) == h and type(pickle.loads(pickle.dumps(h))) is hp
    with pytest.raises(TypeError):
        hp(1)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        h.x = 5  # type: ignore[misc]


def test_call_form_matches_typing() -> None:
    assert HintsEntry._fields == TypingEntry._fields == ("ino", "name")
    assert HintsEntry.__module__ == TypingEntry.__module__ == __name__
    assert list(HintsEntry.__annotations__) == list(TypingEntry.__annotations__)
    h, t = HintsEntry(2, b"."), TypingEntry(2, b".")
    assert tuple(h) == tuple(t) and h.name == t.name == b"."
    assert pickle.loads(pickle.dumps(h)) == h


def test_a_bad_declaration_fails_as_typings_does() -> None:
    for nt in (typing.NamedTuple, hints.NamedTuple):
        with pytest.raises(TypeError, match="Non-default namedtuple field y cannot follow default"):
            exec("class Bad(nt):\n    x: int = 0\n    y: int\n", {"nt": nt, "__name__": __name__})
        with pytest.raises(AttributeError, match="Cannot overwrite NamedTuple attribute _replace"):
            exec("class Bad(nt):\n    x: int\n    def _replace(self): pass\n", {"nt": nt, "__name__": __name__})


class Sized(hints.Protocol):
    def size(self) -> int: ...


class Concrete(Sized):
    """A class may name its protocol as a base, as with typing's."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def size(self) -> int:
        return self.n


def test_protocol_and_cast() -> None:
    assert Concrete(3).size() == 3
    value = object()
    assert hints.cast(int, value) is value and hints.cast("int", value) is value


def test_hints_imports_nothing_heavy() -> None:
    """The point of the module: importing it (and declaring with it) loads no typing, re or enum,
    nor collections (whose namedtuple the stand-in once used) or functools."""
    probe = ("import sys\nfrom p2k.hints import NamedTuple, Protocol\n"
             "class P(NamedTuple):\n    x: int\nclass Q(Protocol):\n    pass\n"
             "print(sorted({'typing', 're', 'enum', 'contextlib', 'warnings', 'collections', 'functools'}"
             " & set(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "[]\n"), r.stderr
