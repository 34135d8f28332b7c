"""Declaring an on-disk structure once, typed, for both byte orders.

A structure is a class whose annotated fields, in on-disk order, each carry their ``struct`` format::

    class WcHeader(Record):
        wc_type: U32
        wc_len: I32
        wc_spare: Annotated[bytes, Fmt("16s")]
        wc_addrs: Annotated[list[int], Fmt("12q")]

From that one text the class gets a ``struct.Struct`` per byte order (``STRUCTS["<"]``,
``STRUCTS[">"]``), its ``SIZE``, a dataclass-like constructor (positional or keyword, one argument per
field), ``==`` and ``repr`` over the fields, ``decode``/``encode``/``encode_into``, and ``OFFSETS``
(each field's byte offset), so nobody spells an offset or a format string a second time.

Not ``dataclasses``: every command imports the FFS driver's records, and ``dataclasses`` (with the
``inspect``, ``ast`` and ``tokenize`` it imports) plus its per-class code generation cost about 10 ms
of a 20 ms start-up. The constructor is generated on a structure's first instantiation instead, the
same code a dataclass would have (one assignment per field), so the hot paths pay nothing more.

Why not construct, the library the project was first specified with: construct's fields are
invisible to editors and type checkers (the record is a dict-like ``Container``), and even its
compiled parsers are several times slower than one ``unpack_from``, which matters on the inode and
directory hot paths: ``bench/bench_ondisk.py`` measured construct 2.10's compiled parser at 7.5 µs
per UFS2 dinode, 8× the driver's ``DinodeCodec.decode`` (0.9 µs) and 16× a bare ``unpack_from``.
A field list that *is* the class gives both: typed attribute access, and the precompiled
``struct.Struct`` that hot paths use directly (``STRUCTS[endian].unpack_from``).
Repeated fields (``"12q"``) become lists; ``Ns`` fields are bytes.
"""

from __future__ import annotations

import struct
import sys
from types import FunctionType

# Not typing at run time: every command declares its records through here, and typing (with the
# re, enum and contextlib it imports) is about 5 ms of a 43 ms ``p2k find`` (see p2k.hints). The
# type checker sees typing's Annotated (re-exported: declarations import it from here); the run time
# gets the little of it a declaration needs, a type with its metadata.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Annotated as Annotated
    from typing import Any, ClassVar, Self, dataclass_transform
else:

    class Annotated:
        """``Annotated[T, x, ...]`` at run time: T and the metadata, under the attribute names
        typing's own gives them (a declaration that imports typing's works the same here)."""

        __slots__ = ("__origin__", "__metadata__")

        def __init__(self, origin, metadata):
            self.__origin__ = origin
            self.__metadata__ = metadata

        def __class_getitem__(cls, params):
            if not isinstance(params, tuple) or len(params) < 2:
                raise TypeError("Annotated[...] should be used with at least two arguments (a type and an annotation)")
            return cls(params[0], params[1:])

        def __repr__(self):
            return f"Annotated[{self.__origin__!r}, {', '.join(map(repr, self.__metadata__))}]"

        def __eq__(self, other):
            if not isinstance(other, Annotated):
                return NotImplemented
            return (self.__origin__, self.__metadata__) == (other.__origin__, other.__metadata__)

        def __hash__(self):
            return hash((self.__origin__, self.__metadata__))

    def dataclass_transform(**kwargs):
        """For the type checker only (PEP 681)."""
        return lambda cls: cls

ENDIANS = ("<", ">")


class Fmt:
    """The ``struct`` format of one field: ``"I"``, ``"12q"``, ``"16s"``."""

    __slots__ = ("fmt",)

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def __repr__(self) -> str:
        return f"Fmt({self.fmt!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fmt) and other.fmt == self.fmt

    def __hash__(self) -> int:
        return hash(self.fmt)


U8 = Annotated[int, Fmt("B")]
U16 = Annotated[int, Fmt("H")]
U32 = Annotated[int, Fmt("I")]
U64 = Annotated[int, Fmt("Q")]
I8 = Annotated[int, Fmt("b")]
I16 = Annotated[int, Fmt("h")]
I32 = Annotated[int, Fmt("i")]
I64 = Annotated[int, Fmt("q")]

_FIELD_STRUCTS: dict[tuple[type, str, str], struct.Struct] = {}
_HINTS: dict[tuple[str, str], Any] = {}  # (module, annotation text) -> the evaluated hint


def _field_format(owner: type, name: str, hint: Any) -> str:
    for meta in getattr(hint, "__metadata__", ()):  # an Annotated, ours or typing's
        if isinstance(meta, Fmt):
            return meta.fmt
    raise TypeError(f"{owner.__name__}.{name}: an on-disk field needs a Fmt (e.g. U32 or Annotated[.., Fmt(..)])")


def define(text: str, filename: str, scope: dict[str, Any]) -> None:
    """Run generated source ``text`` in ``scope``; the functions it defines name ``filename`` in
    tracebacks and profiles. Not ``exec(compile(text, filename, ...))``: the first ``compile()``
    of a process sets up the ``ast`` node types (about 120 classes, 0.8 ms of every command's
    start-up), which a plain ``exec`` of a string never needs."""
    before = set(scope)
    exec(text, scope)  # noqa: S102 - callers pass text they generated from their own declarations
    for name in set(scope) - before:
        fn = scope[name]
        if isinstance(fn, FunctionType) and fn.__code__.co_filename == "<string>":
            fn.__code__ = fn.__code__.replace(co_filename=filename)


_MISSING: Any = object()


def _hint(module: str, text: str) -> Any:
    """An annotation (a string under ``from __future__ import annotations``) evaluated in its
    module, then here; a superblock repeats a dozen texts a hundred times, so each is evaluated once."""
    key = (module, text)
    hint = _HINTS.get(key)
    if hint is None:
        mod = sys.modules.get(module)
        ns = vars(mod) if mod else {}
        # a bare name (U32) is looked up, and Annotated[T, Fmt("...")] read by _annotated_fmt:
        # eval parses its text, 10-20 us a field type, 0.3 ms of every command's start-up
        hint = ns.get(text, _MISSING)
        if hint is _MISSING:
            hint = globals().get(text, _MISSING)
        if hint is _MISSING:
            hint = _annotated_fmt(text, ns)
        if hint is _MISSING:
            hint = eval(text, {**globals(), **ns})  # noqa: S307 - our own annotations
        _HINTS[key] = hint
    return hint


def _annotated_fmt(text: str, ns: dict[str, Any]) -> Any:
    """``Annotated[T, Fmt("...")]``, the declarations' one form that is not a bare name, without
    eval: the Fmt is all a declaration reads of it (the type stays its text). _MISSING for any
    other text, or where the module's names Annotated or Fmt are not these (or typing's)."""
    if ns.get("Fmt", Fmt) is not Fmt or getattr(ns.get("Annotated", Annotated), "__name__", "") != "Annotated":
        return _MISSING
    if text.startswith("Annotated[") and text.endswith(")]"):  # the text as the compiler gives it back
        head, sep, arg = text[10:-2].partition(", Fmt(")
        quote = arg[:1]
        if sep and head and quote in ("'", '"') and arg.endswith(quote) and quote not in arg[1:-1] and "\\" not in arg:
            return Annotated[head, Fmt(arg[1:-1])]
    return _MISSING


def _is_classvar(annotation: Any) -> bool:
    """A ``ClassVar`` annotation (not an on-disk field), told without importing typing: as text
    (``from __future__ import annotations``) by its name, as an object through typing, which
    whoever made the object has imported."""
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar[", "typing.ClassVar[")) or annotation in ("ClassVar", "typing.ClassVar")
    typing = sys.modules.get("typing")
    return typing is not None and (annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar)


@dataclass_transform()
class Record:
    """Base of every declared on-disk structure (see the module docstring)."""

    FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    STRUCTS: ClassVar[dict[str, struct.Struct]]
    SIZE: ClassVar[int]
    OFFSETS: ClassVar[dict[str, int]]
    _COUNTS: ClassVar[tuple[int, ...]]  # per field: 0 for a scalar, N for an N-element list

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if any("FIELDS" in vars(base) for base in cls.__mro__[1:]):
            # A subclass of a declared record adds in-core state (the superblock's byte order, where
            # it was found): its own annotations are not on disk, and the layout is inherited.
            return
        hints = {n: _hint(cls.__module__, a) if isinstance(a, str) else a
                 for n, a in cls.__dict__.get("__annotations__", {}).items()
                 if not n.startswith("_") and not _is_classvar(a)}
        fields = tuple((n, _field_format(cls, n, hint)) for n, hint in hints.items())
        counts = []
        for _, f in fields:  # "12q" is 12 values, "16s" one bytes value, "I" one value
            n, code = f[:-1], f[-1]
            counts.append(int(n) if n.isascii() and n.isdigit() and code not in "sp" else 0)
        cls.FIELDS = fields
        cls._COUNTS = tuple(counts)
        cls.STRUCTS = {e: struct.Struct(e + "".join(f for _, f in fields)) for e in ENDIANS}
        cls.SIZE = cls.STRUCTS["<"].size
        offsets, off = {}, 0
        for n, f in fields:
            offsets[n] = off
            off += struct.calcsize("<" + f)
        cls.OFFSETS = offsets

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Stands in until a structure is first built: generates its constructor (one assignment
        per field, as a dataclass's), installs it on the declaring class and calls it."""
        decl: type[Record] = next(c for c in type(self).__mro__ if "FIELDS" in vars(c))
        names = [n for n, _ in decl.FIELDS]
        params = "".join(f", {n}" for n in names)
        body = "".join(f"\n    self.{n} = {n}" for n in names) or "\n    pass"
        ns: dict[str, Any] = {}
        define(f"def __init__(self{params}):{body}", f"<record {decl.__name__}>", ns)
        init = ns["__init__"]
        init.__qualname__ = f"{decl.__qualname__}.__init__"
        setattr(decl, "__init__", init)  # noqa: B010 - a method installed on another class
        init(self, *args, **kwargs)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n, _ in self.FIELDS)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n, _ in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: as a dataclass

    @classmethod
    def decode(cls, buf: bytes | bytearray | memoryview, off: int = 0, endian: str = "<") -> Self:
        """One ``unpack_from``; repeated fields are gathered into lists."""
        vals = cls.STRUCTS[endian].unpack_from(buf, off)
        if not any(cls._COUNTS):
            return cls(*vals)
        args: list[Any] = []
        i = 0
        for n in cls._COUNTS:
            if n:
                args.append(list(vals[i:i + n]))
                i += n
            else:
                args.append(vals[i])
                i += 1
        return cls(*args)

    @classmethod
    def field(cls, name: str, endian: str = "<") -> struct.Struct:
        """The ``struct.Struct`` of field ``name`` alone, for patching one field in place:
        ``X.field("d_reclen", e).pack_into(buf, off + X.OFFSETS["d_reclen"], value)``."""
        key = (cls, name, endian)
        st = _FIELD_STRUCTS.get(key)
        if st is None:
            st = _FIELD_STRUCTS[key] = struct.Struct(endian + dict(cls.FIELDS)[name])
        return st

    def update(self, **values: Any) -> None:
        """Set several fields at once (newfs fills a superblock this way); a name that is not a
        declared field is an error, not a new attribute that would never reach the disk."""
        unknown = sorted(set(values) - self.OFFSETS.keys())
        if unknown:
            raise AttributeError(f"{type(self).__name__} has no on-disk field {', '.join(unknown)}")
        for name, value in values.items():
            setattr(self, name, value)

    @classmethod
    def zeroed(cls) -> Self:
        """A record whose every byte is zero (what a new structure starts from)."""
        return cls.decode(bytes(cls.SIZE))

    def values(self) -> list[Any]:
        """The flat value list ``struct`` packs, in declaration order."""
        out: list[Any] = []
        for (name, _), n in zip(self.FIELDS, self._COUNTS, strict=True):
            v = getattr(self, name)
            if n:
                if len(v) != n:
                    raise ValueError(f"{type(self).__name__}.{name}: {len(v)} values, {n} expected")
                out.extend(v)
            else:
                out.append(v)
        return out

    def encode(self, endian: str = "<") -> bytes:
        return self.STRUCTS[endian].pack(*self.values())

    def encode_into(self, buf: bytearray | memoryview, off: int = 0, endian: str = "<") -> None:
        self.STRUCTS[endian].pack_into(buf, off, *self.values())
