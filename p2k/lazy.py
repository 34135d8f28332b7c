"""Package re-exports resolved on first use (PEP 562), shared by the packages that have them.

A package's ``__init__`` that imports its submodules to re-export their names makes every user of
any one submodule pay for all of them: ``p2k ls`` on a plain FFS image imported the qcow2 reader,
the disklabel codecs and fault injection through ``p2k.etfs`` alone. With these hooks a name is
imported when it is first asked for, and the package's surface (``__all__``) is unchanged.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # as typing's, which (with re, collections) is most of ``p2k --version``'s cost
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``where`` maps each lazily exported name to the
    module that defines it. A name is imported when first asked for, then bound in the package as
    an eager import would have bound it."""

    def __getattr__(name: str) -> Any:
        mod = where.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        __import__(mod)  # importlib.import_module, without importing importlib's package (--version)
        value = getattr(sys.modules[mod], name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
