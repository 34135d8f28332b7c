"""The shared secret of ``rump_server -a FILE``: challenge and response, nothing secret on the wire.

The server puts a fresh random challenge in its banner; the client answers in its handshake with
its own nonce and HMAC-SHA256(secret, "client" | challenge | nonce); the server compares in
constant time and proves in turn that it knows the secret too, with the "server" HMAC over the
same nonces, so a client holding a secret never talks to an impostor. A wrong or missing answer
gets the same reply as any other refusal ("authentication failed") and the connection is closed.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os

CHALLENGE_TAG = b" challenge="
NONCE_BYTES = 16


def read_secret(path: str) -> bytes:
    """The secret in file ``path`` (surrounding white space dropped); an empty one is refused."""
    with open(path, "rb") as f:
        secret = f.read(1 << 16).strip()
    if not secret:
        raise OSError(errno.EINVAL, "the secret file is empty", path)
    return secret


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES).hex().encode()


def proof(secret: bytes, side: bytes, challenge: bytes, nonce: bytes) -> str:
    return hmac.new(secret, side + b"|" + challenge + b"|" + nonce, hashlib.sha256).hexdigest()


def check(secret: bytes, side: bytes, challenge: bytes, nonce: bytes, answer: object) -> bool:
    if type(answer) is not str or len(answer) != 64:
        return False
    return hmac.compare_digest(proof(secret, side, challenge, nonce).encode(), answer.encode())


def banner_challenge(line: bytes) -> bytes | None:
    """The challenge in a server's banner line, or None if the server asks for no secret."""
    i = line.find(CHALLENGE_TAG)
    if i < 0:
        return None
    value = line[i + len(CHALLENGE_TAG):].strip()
    return value if 0 < len(value) <= 64 and value.isalnum() else None
