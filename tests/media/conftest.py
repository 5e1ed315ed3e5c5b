"""Test settings for the media package.

pyproject sets ``asyncio_mode = "auto"``; this only makes the helpers next to the tests
importable whatever pytest's import mode is.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _quiet_aiortc() -> None:
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
