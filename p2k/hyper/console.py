"""The kernel's console messages (NetBSD's printf/log to the console), through ``logging``.

``logging`` costs 2-3 ms to import (with ``traceback``, ``string``, ``weakref``), and a command
that reads a healthy image never prints a console line, so a driver's module-level logger is a
stand-in that imports ``logging`` on its first message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging


class _Console:
    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: logging.Logger | None = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import logging

            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attr)


def console(name: str) -> logging.Logger:
    """The logger ``name`` (``"p2k.ffs"``), imported and looked up when first used."""
    return cast("logging.Logger", _Console(name))
