"""FUSE tests need /dev/fuse and fusermount3; without them the whole folder is skipped, saying why."""

from __future__ import annotations

from fuse_harness import HAVE_FUSE

if not HAVE_FUSE:
    collect_ignore_glob = ["test_*.py"]
    print("tests/fuse skipped: no /dev/fuse or fusermount3")
