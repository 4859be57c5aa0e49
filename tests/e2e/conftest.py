"""Fixtures of the end-to-end tests: where screenshots go, free loopback ports."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"


@pytest.fixture
def screenshot_dir() -> Path:
    """``artifacts/screenshots/`` under the repository root (git-ignored), created."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
