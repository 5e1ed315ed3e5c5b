"""Test settings for the cobrowse package."""

from __future__ import annotations

import sys
from pathlib import Path

# Let test modules import the helpers next to them whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).parent))
