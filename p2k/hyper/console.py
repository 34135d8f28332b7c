"""The kernel's console messages (NetBSD's printf/log to the console), through ``logging``.

``logging`` costs 2-3 ms to import (with ``traceback``, ``string``, ``weakref``), and a command
that reads a healthy image never prints a console line, so a driver's module-level logger is a
stand-in that imports ``logging`` on its first message.
"""

from __future__ import annotations

from p2k.hints import cast

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    import logging
    from typing import Any


_PENDING: dict[str, Any] = {}


def configure(**basic: Any) -> None:
    """``logging.basicConfig(**basic)``, applied when a console first imports ``logging`` (or at
    once if something already has): a daemon sets its message format without paying for
    ``logging`` (1.4 MiB of its resident size) until it has something to say."""
    import sys

    logging = sys.modules.get("logging")
    if logging is not None:
        logging.basicConfig(**basic)
    else:
        _PENDING.update(basic)


class _Console:
    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: logging.Logger | None = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import logging

            if _PENDING:
                logging.basicConfig(**_PENDING)
                _PENDING.clear()
            logger = self._logger = logging.getLogger(self._name)
        return getattr(logger, attr)


def console(name: str) -> logging.Logger:
    """The logger ``name`` (``"p2k.ffs"``), imported and looked up when first used."""
    return cast("logging.Logger", _Console(name))
