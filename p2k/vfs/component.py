"""Components: file-system drivers registered by name, as rump loads its component libraries.

A component names the mount class it provides and the components it needs. The kernel looks file
system types up here; ``rump_server -l`` / ``-m`` load more components by module path or by the
``p2k.components`` entry-point group, so a third-party package can ship a driver of its own.
"""

from __future__ import annotations

import errno
import sys

from p2k.slotted import Frozen

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.vfs.mount import Mount


class Component(Frozen):
    """``mount_class`` may be given as ``"package.module:Class"``: the driver is then imported at
    its first mount, not when the component registers. A command that only needs a driver's
    libraries (fsck, newfs, dumpfs import ``p2k.fs.ffs`` for them) does not pay for loading every
    vnode operation of it at start-up."""

    __slots__ = ("name", "mount_class", "deps", "description")
    name: str
    mount_class: type[Mount] | str | None
    deps: tuple[str, ...]
    description: str

    def __init__(self, name: str, mount_class: type[Mount] | str | None = None, deps: tuple[str, ...] = ("vfs",),
                 description: str = "") -> None:
        self._set(name=name, mount_class=mount_class, deps=deps, description=description)

    def mounter(self) -> type[Mount]:
        """The mount class, imported now if it was named by path."""
        cls = self.mount_class
        if isinstance(cls, str):
            modname, _, attr = cls.partition(":")
            cls = getattr(_import_module(modname), attr)
        if cls is None:
            raise OSError(errno.ENODEV, f"file system type {self.name!r} provides no mount")
        return cls


def _import_module(name: str) -> object:
    """``importlib.import_module`` for an absolute name, without importing importlib's package
    (which imports ``warnings``) into every command that mounts an image, as p2k.lazy does."""
    __import__(name)
    return sys.modules[name]


_registry: dict[str, Component] = {}


def register(component: Component) -> Component:
    _registry[component.name] = component
    return component


def load_builtin() -> None:
    """Load the components that ship with p2k (what rump_allserver links in)."""
    for mod in ("p2k.fs.tmpfs", "p2k.fs.ffs"):
        _import_module(mod)  # a broken driver is a bug to see, not a type to hide


def load(spec: str) -> Component:
    """Load a component by entry-point name (``ffs``) or module path (``pkg.mod``/``pkg.mod:attr``)."""
    # importlib.metadata scans every installed distribution (~15 ms): only rump_server -l/-m pays it.
    from importlib.metadata import entry_points

    for ep in entry_points(group="p2k.components"):
        if ep.name == spec:
            obj = ep.load()
            return register(obj) if isinstance(obj, Component) else lookup(spec)
    modname, _, attr = spec.partition(":")
    try:
        mod = _import_module(modname)
    except ImportError as e:
        raise OSError(errno.ENOENT, f"component {spec}: {e}") from None
    obj = getattr(mod, attr or "component", None)
    if not isinstance(obj, Component):
        raise OSError(errno.ENOENT, f"component {spec}: module provides no 'component'")
    return register(obj)


def lookup(fstype: str) -> Component:
    comp = _registry.get(fstype)
    if comp is None:
        load_builtin()
        comp = _registry.get(fstype)
    if comp is None or comp.mount_class is None:
        raise OSError(errno.ENODEV, f"file system type {fstype!r} not available")
    return comp


def loaded() -> list[str]:
    return sorted(_registry)
