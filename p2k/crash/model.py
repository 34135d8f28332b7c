"""What a workload believes it wrote, and which of it an fsync made durable."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FileModel:
    file_id: int
    content: bytearray = field(default_factory=bytearray)


@dataclass
class Model:
    files: dict[str, FileModel] = field(default_factory=dict)
    durable: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    next_id: int = 1
    ops: int = 0
    inflight: set[str] = field(default_factory=set)  # paths the call cut short was acting on
    # user attributes (name → value) of files whose attributes an fsync made durable
    xattrs_durable: dict[str, dict[bytes, bytes]] = field(default_factory=dict)

    def begin(self, *paths: str) -> None:
        """Paths the next call acts on: a call the power cut interrupts may or may not have taken
        effect (POSIX promises nothing either way), so its paths are not checked afterwards."""
        self.inflight = set(paths)

    def settled_durable(self) -> dict[str, tuple[int, bytes]]:
        """The fsync'ed files whose fate the interrupted call could not have changed."""
        return {p: v for p, v in self.durable.items() if p not in self.inflight}

    def create(self, path: str) -> int:
        fid = self.next_id
        self.next_id += 1
        self.files[path] = FileModel(fid)
        self.durable.pop(path, None)
        return fid

    def write(self, path: str, offset: int, data: bytes) -> None:
        f = self.files[path]
        end = offset + len(data)
        if len(f.content) < end:
            f.content.extend(bytes(end - len(f.content)))
        f.content[offset:end] = data
        self.durable.pop(path, None)

    def truncate(self, path: str, size: int) -> None:
        f = self.files[path]
        if size < len(f.content):
            del f.content[size:]
        else:
            f.content.extend(bytes(size - len(f.content)))
        self.durable.pop(path, None)

    def rename(self, src: str, dst: str) -> None:
        self.files[dst] = self.files.pop(src)
        self.durable.pop(src, None)
        self.durable.pop(dst, None)

    def unlink(self, path: str) -> None:
        self.files.pop(path, None)
        self.durable.pop(path, None)

    def fsynced(self, path: str) -> None:
        f = self.files[path]
        self.durable[path] = (f.file_id, bytes(f.content))
