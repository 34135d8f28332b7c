"""typing's run-time constructs for the type checker, and light stand-ins for them at run time.

Every fs-utils command imports the kernel and the FFS driver, whose modules declared a few records
with ``typing.NamedTuple``, a few interfaces with ``typing.Protocol`` and called ``typing.cast``.
Importing ``typing`` costs about 1.5 ms itself and pulls ``re`` (with ``enum``, ``re._parser``,
``re._compiler``, ``copyreg``: 2.5 ms), ``contextlib`` and ``warnings``: about 5 ms of the 43 ms a
``p2k find`` of a 10,000-file image took, against ``fsu_find``'s 16 ms and a bare interpreter's 8
(issue 16). What those few constructs do at run time is small, and done here without them.

Modules import these names from here (``from p2k.hints import NamedTuple, Protocol``). A type
checker sees typing's own (the ``if TYPE_CHECKING`` branch, a re-export mypy resolves to the
original, so a ``class X(NamedTuple)`` is checked as a named tuple, a ``Protocol`` structurally).
Names that only annotations use (``Any``, ``TypeVar``, ``IO``...) need nothing from here: modules
import them from typing under their own ``TYPE_CHECKING = False`` guard (see ``p2k.lazy``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own, without importing typing (the point of this module)
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
    from typing import Protocol as Protocol
    from typing import cast as cast
else:
    import sys
    from operator import itemgetter

    def _repr(self: tuple[object, ...]) -> str:
        fields = type(self)._fields
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(fields, self, strict=True))})"

    def _make(cls: type, iterable: object) -> tuple[object, ...]:
        result = tuple.__new__(cls, iterable)
        if len(result) != len(cls._fields):
            raise TypeError(f"Expected {len(cls._fields)} arguments, got {len(result)}")
        return result

    def _replace(self: tuple[object, ...], /, **kwds: object) -> tuple[object, ...]:
        result = type(self)._make([kwds.pop(n, v) for n, v in zip(self._fields, self, strict=True)])
        if kwds:
            raise ValueError(f"Got unexpected field names: {list(kwds)!r}")
        return result

    def _asdict(self: tuple[object, ...]) -> dict[str, object]:
        return dict(zip(self._fields, self, strict=True))

    def _getnewargs(self: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(self)

    def _namedtuple(typename: str, fields: dict[str, object], defaults: list[object] | tuple[object, ...] = (),
                   module: str = "__main__") -> type:
        """``collections.namedtuple``'s class, built the same way (a ``__new__`` with exactly the
        fields as parameters, made by ``eval`` as the stdlib does; read-only fields), without
        importing collections: the package with keyword, reprlib and its own import is 1.1 ms of
        every command's start-up, for this one function. A field is a ``property`` of an
        ``itemgetter`` where the stdlib has its private C ``_tuplegetter``."""
        names = tuple(fields)
        args = ", ".join(names) + ("," if len(names) == 1 else "")
        new = eval(f"lambda _cls, {args}: _tuple_new(_cls, ({args}))",
                   {"_tuple_new": tuple.__new__, "__builtins__": {}, "__name__": f"namedtuple_{typename}"})
        new.__name__, new.__qualname__, new.__defaults__ = "__new__", f"{typename}.__new__", tuple(defaults) or None
        ns: dict[str, object] = {
            "__doc__": f"{typename}({', '.join(names)})", "__slots__": (), "_fields": names,
            "_field_defaults": dict(zip(names[len(names) - len(defaults):], defaults, strict=True)),
            "__new__": new, "_make": classmethod(_make), "_replace": _replace, "__repr__": _repr,
            "_asdict": _asdict, "__getnewargs__": _getnewargs, "__match_args__": names, "__module__": module,
        }
        for i, name in enumerate(names):
            ns[name] = property(itemgetter(i), doc=f"Alias for field number {i}")
        return type(typename, (tuple,), ns)

    # What typing.NamedTuple forbids a class body to define (namedtuple's own machinery), and what
    # it does not copy from the body to the generated class.
    _PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                             "_make", "_replace", "_asdict", "_source"})
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _NamedTupleMeta(type):
        """Builds a class statement's named tuple class, as ``typing.NamedTupleMeta``
        does: fields are the annotated names in order, a value in the body is that field's
        default, everything else in the body (methods, docstring, constants) is copied onto it.
        Unlike typing's, the annotations are kept as written: typing turns each annotation
        string into a ``ForwardRef``, which compiles it (``p2k.ondisk.define`` says what the
        first ``compile()`` of a process costs)."""

        def __new__(mcls, typename: str, bases: tuple[type, ...], ns: dict[str, object]) -> type:
            if any(b is not _NamedTupleBase for b in bases):
                raise TypeError("can only inherit from a NamedTuple type")
            types = dict(ns.get("__annotations__", {}))
            defaults: list[object] = []
            for name in types:
                if name in ns:
                    defaults.append(ns[name])
                elif defaults:
                    raise TypeError(f"Non-default namedtuple field {name} cannot follow default field(s)")
            cls = _namedtuple(typename, types, defaults=defaults, module=ns["__module__"])
            cls.__annotations__ = cls.__new__.__annotations__ = types
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError("Cannot overwrite NamedTuple attribute " + key)
                if key not in _SPECIAL and key not in types:
                    setattr(cls, key, value)
            return cls

    # What ``class X(NamedTuple)`` really names as its base (``NamedTuple.__mro_entries__``); its
    # metaclass makes the class statement return a namedtuple class instead. Made by type.__new__,
    # as typing makes its own, so that the metaclass does not turn the base itself into one.
    _NamedTupleBase = type.__new__(_NamedTupleMeta, "NamedTuple", (), {})

    def _namedtuple_bases(bases: tuple[object, ...]) -> tuple[type, ...]:
        return (_NamedTupleBase,)

    def NamedTuple(typename: str, fields: list[tuple[str, object]] | tuple[tuple[str, object], ...] = (), /) -> type:
        """``NamedTuple("P", [("x", int), ("y", int)])``, or a base class (``class P(NamedTuple)``)."""
        types = dict(fields)
        cls = _namedtuple(typename, types, module=sys._getframe(1).f_globals.get("__name__", "__main__"))
        cls.__annotations__ = cls.__new__.__annotations__ = types
        return cls

    NamedTuple.__mro_entries__ = _namedtuple_bases

    class Protocol:
        """A plain base: nothing checks a protocol at run time here (none is ``runtime_checkable``)."""

        __slots__ = ()

    def cast(typ: object, val: object) -> object:
        """typing's: the value itself; the type is for the checker."""
        return val


__all__ = ["NamedTuple", "Protocol", "cast"]
