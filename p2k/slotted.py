"""``Slotted``: ``==`` and ``repr`` over ``__slots__``, for the mutable value classes every command imports.

Those classes (a vnode's attributes, a namei result, a registration target...) were dataclasses.
``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``) and generates each class's
methods with ``exec`` at import: about 8 ms of a command's start-up for a dozen classes, more than
the command's own work on a small image. A class here writes its ``__init__`` (the one place its
defaults are spelled) and lists its fields once, in ``__slots__``; this base gives it the
comparison and the text a dataclass would. ``Frozen`` is the immutable, hashable kind (a frozen
dataclass). Not ``typing.NamedTuple``: under ``from __future__ import annotations`` it compiles
every field's annotation text at class creation, about 0.2 ms per class.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing it: a command's --help never needs typing (p2k.lazy)
if TYPE_CHECKING:
    from typing import Any

_FIELDS: dict[type, tuple[str, ...]] = {}


def slot_names(cls: type) -> tuple[str, ...]:
    """Every slot of ``cls`` and its bases, base first (a subclass adds fields at the end)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(n for c in reversed(cls.__mro__) for n in c.__dict__.get("__slots__", ()))
    return names


class Slotted:
    __slots__ = ()

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={getattr(self, n)!r}" for n in slot_names(type(self)))
        return f"{type(self).__qualname__}({values})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in slot_names(type(self)))

    __hash__: Any = None  # mutable and compared by value, as a dataclass without frozen=True


class Frozen(Slotted):
    """Fields set once, by ``__init__`` through ``_set``; equal and hashed by value. ``__init__``
    takes the fields positionally in ``__slots__`` order (``__reduce__`` relies on it)."""

    __slots__ = ()

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of immutable {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of immutable {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in slot_names(type(self))))

    def __reduce__(self) -> tuple[Any, ...]:
        """For pickle and copy, which would set the fields one by one: a Frozen class's
        ``__init__`` takes its fields positionally, in ``__slots__`` order."""
        return type(self), tuple(getattr(self, n) for n in slot_names(type(self)))
