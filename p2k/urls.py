"""Images behind fsspec URLs (``https://…``, ``s3://…``, ``memory://…``), opened for reading in
ranges: what the ``p2k`` fsspec file system and the commands' ``IMAGE`` operand share.

Its own module, below both: the commands must not import the fsspec file system (which imports the
high-level image API, which the commands' copy code serves), and the file system must not import
the commands.
"""

from __future__ import annotations

import posixpath
from typing import Any
from urllib.parse import urljoin

from p2k.etfs.resolve import split_image_arg

TYPE_CHECKING = False  # typing's, without importing it: p2k.hints says what typing costs a command
if TYPE_CHECKING:
    from p2k.hyper.containers import SiblingOpener

REMOTE_BLOCK_SIZE = 256 << 10
"""Bytes fsspec fetches per range request: large enough for a directory walk's neighbouring
blocks, small enough that a file read from a big image pulls in little it does not need."""


def open_url(url: str, protocol: str | None = None, options: dict[str, Any] | None = None,
             block_size: int = REMOTE_BLOCK_SIZE,
             partition: str | None = None) -> tuple[Any, SiblingOpener, str, str | None]:
    """Open the image behind a (non-local) fsspec URL, read in ranges: the file object, an opener
    for files the image names beside itself (a qcow2 overlay's backing file), the URL without a
    ``:NAME`` partition suffix, and that name. The CLI opens ``p2k ls https://…/disk.img.gz /``
    images through this too."""
    import fsspec
    from fsspec.core import split_protocol

    protocol = protocol or split_protocol(url)[0] or "file"
    target = fsspec.filesystem(protocol, **(options or {}))
    if partition is None:
        url, partition = split_image_arg(url, exists=target.exists)
    f = target.open(url, "rb", block_size=block_size)

    def open_sibling(name: str) -> Any:
        """A qcow2 overlay's backing file, named as qemu-img stored it: relative to the overlay's
        folder in the same file system (an absolute name is a path in it)."""
        base = target._strip_protocol(url)
        if name.startswith("/") and "://" in base:  # http(s): a path on the same server
            path = urljoin(base, name)
        elif name.startswith("/"):
            path = name
        else:
            path = posixpath.join(posixpath.dirname(base), name)
        return target.open(path, "rb", block_size=block_size)

    return f, open_sibling, url, partition
