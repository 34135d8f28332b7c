"""Server URLs as rump_sp(7) spells them: ``unix://path`` and ``tcp://addr:port/``.

``unix://sock`` is relative to the current directory, ``unix:///tmp/sock`` absolute;
``tcp://0:3755/`` listens on every address, ``tcp://127.0.0.1:3755/`` on one, and an IPv6 address
goes in brackets (``tcp://[::1]:3755/``). Server and client parse with the same code so that a
URL that one accepts the other understands.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerAddress:
    family: int  # AF_UNIX, AF_INET or AF_INET6
    address: str | tuple[Any, ...]  # what socket.bind/connect take for the family
    url: str
    any_address: bool = False  # tcp://0:port/: bind every address, IPv6 and IPv4

    @property
    def is_unix(self) -> bool:
        return self.family == socket.AF_UNIX


def parse_url(url: str) -> ServerAddress:
    """The socket address a URL names; ``OSError(EINVAL)``/``OSError(EPROTONOSUPPORT)`` if none."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise OSError(errno.EINVAL, f"invalid URL {url!r} (want unix://path or tcp://addr:port/)")
    if scheme == "unix":
        if not rest:
            raise OSError(errno.EINVAL, f"invalid URL {url!r}: empty socket path")
        if len(rest.encode()) > 107:
            raise OSError(errno.ENAMETOOLONG, f"socket path too long: {rest}")
        return ServerAddress(socket.AF_UNIX, rest, url)
    if scheme != "tcp":
        raise OSError(errno.EPROTONOSUPPORT, f"unsupported protocol {scheme!r} in {url!r}")
    hostport = rest[:-1] if rest.endswith("/") else rest
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise OSError(errno.EINVAL, f"invalid URL {url!r}: want [ipv6]:port")
        port_s = tail[1:]
    else:
        host, colon, port_s = hostport.rpartition(":")
        if not colon or ":" in host:
            raise OSError(errno.EINVAL, f"invalid URL {url!r}: want tcp://addr:port/")
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise OSError(errno.EINVAL, f"invalid port {port_s!r} in {url!r}")
    port = int(port_s)
    if host in ("0", "", "*"):
        return ServerAddress(socket.AF_INET6, ("::", port, 0, 0), url, any_address=True)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host!r}: {e.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return ServerAddress(family, sockaddr, url)
