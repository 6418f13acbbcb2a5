"""Taking a photo for a checklist: plyer's camera on Android, a directory or a generated test card
on desktop (rugged tablets without a camera, tests)."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

OnPhoto = Callable[[Path | None], None]


class Camera(Protocol):
    name: str

    def take(self, path: Path, on_done: OnPhoto) -> None: ...


class PlyerCamera:
    name = "android"

    def take(self, path: Path, on_done: OnPhoto) -> None:
        from plyer import camera

        path.parent.mkdir(parents=True, exist_ok=True)

        def done(filename: str) -> bool:
            p = Path(filename)
            on_done(p if p.exists() else None)
            return False

        camera.take_picture(filename=str(path), on_complete=done)


def sample_card_png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A small striped PNG (stdlib only), different per seed, standing in for a photo."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            v = ((x // 8 + y // 8 + seed) % 2) * 200
            row += bytes([v, (v + 40 * seed) % 256, 255 - v])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


class DesktopCamera:
    """The newest image in ``source_dir`` (e.g. where a webcam tool saves), else a test card."""

    name = "desktop"

    def __init__(self, source_dir: Path | None = None) -> None:
        self.source_dir = source_dir
        self.taken = 0

    def take(self, path: Path, on_done: OnPhoto) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.taken += 1
        images = sorted((p for p in self.source_dir.glob("*")
                         if p.suffix.lower() in (".png", ".jpg", ".jpeg")),
                        key=lambda p: p.stat().st_mtime) if self.source_dir else []
        if images:
            shutil.copyfile(images[-1], path)
        else:
            path.write_bytes(sample_card_png(seed=self.taken))
        on_done(path)
