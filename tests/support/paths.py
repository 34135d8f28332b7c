"""Where the repository and its bundled images are, wherever a test module sits."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
SHARED = REPO.parent / "shared"
