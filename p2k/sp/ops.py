"""The calls a remote client may make, by number: the server's whitelist and the client's method list.

A request names a call by its number in ``SYSCALLS``; anything not listed is ENOSYS. Nothing in
the list reaches the host: every path is resolved in the kernel's own namespace, and devices are
only the etfs keys fixed at server start-up (a ``mount`` names a key, never a host file).
Numbers are stable: new calls are appended, never inserted, so an older client keeps working.
"""

from __future__ import annotations

# Control operations, handled by the server itself rather than by a process's Syscalls.
OP_HANDSHAKE = 1
OP_HALT = 2
OP_STATS = 3
OP_PING = 4
OP_SYSCTL = 5
OP_SHM = 6  # p2k/sp/shm.py: a shared-memory arena for bulk reads (unix:// only)
OP_SHM_READ = 7
OP_SHM_PREAD = 8
FIRST_SYSCALL = 16
CONNECTION = 0
"""Request number of a frame about the connection rather than a call: the server's refusal of a
client it cannot take ("server busy"), sent right after the banner, before any handshake."""

SYSCALLS: tuple[str, ...] = (
    # files and descriptors
    "open", "close", "read", "write", "pread", "pwrite", "lseek", "fstat", "fstatvfs", "getdents",
    "fsync", "fdatasync", "fchdir", "dup", "dup2", "umask", "ftruncate", "fchmod", "fchown", "futimens",
    # paths
    "stat", "lstat", "statvfs", "mkdir", "mknod", "mkfifo", "symlink", "link", "readlink", "unlink",
    "rmdir", "rename", "listdir", "chdir", "getcwd", "chmod", "chown", "lchown", "utimensat", "utime",
    "truncate", "access", "check_access",
    # mount table
    "mount", "unmount", "sync",
    # vnode handles (the FUSE bridge's calls; handles are per connection)
    "lookup", "root_vnode", "vref", "vrele", "vstat", "vgetattr", "vstatvfs", "vopen", "vreaddir",
    "vreadlink", "vchmod", "vchown", "vutimens", "vtruncate", "vfsync",
    # appended later (numbers above never move)
    "vlink",
    # the FUSE bridge as a remote client (p2k/vfs/sys_handle.py; vrelev: p2k/sp/handles.py)
    "vlookup", "vreaddirplus", "vcreate", "vrelev",
    # the rest of the handle interface, and the sysctl tree (p2k/vfs/sysctl.py)
    "vsetattr", "vaccess", "fwrite", "sysctl", "sysctl_list", "setcred",
    "vmake",
    # extended attributes and POSIX.1e ACLs (the _fd forms also take a vnode handle)
    "extattr_get_file", "extattr_get_link", "extattr_get_fd", "extattr_set_file", "extattr_set_link",
    "extattr_set_fd", "extattr_delete_file", "extattr_delete_link", "extattr_delete_fd",
    "extattr_list_file", "extattr_list_link", "extattr_list_fd", "acl_get_file", "acl_set_file",
)

OP_OF: dict[str, int] = {name: FIRST_SYSCALL + i for i, name in enumerate(SYSCALLS)}
NAME_OF: dict[int, str] = {op: name for name, op in OP_OF.items()}

RETURNS_VNODE = frozenset({"lookup", "root_vnode", "vref", "vlookup", "vcreate", "vreaddirplus", "vmake"})
"""Calls whose result is or holds vnodes: the server gives the client a new handle for each."""

# Flags of reboot(2) as rump.halt sends them (NetBSD's values).
RB_NOSYNC = 0x04
RB_HALT = 0x08
RB_DUMP = 0x100
