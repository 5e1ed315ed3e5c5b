"""A small user-agent parser: enough to show an agent "Chrome 131 on Android, phone".

Order matters: many browsers carry each other's tokens (Edge and Opera say "Chrome", Chrome
says "Safari"), so the more specific token is looked for first.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from signaling.protocol import Device

DeviceType = Literal["desktop", "mobile", "tablet", "bot", "unknown"]

_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/([\d.]+)")),
    ("Opera", re.compile(r"(?:OPR|Opera)/([\d.]+)")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/([\d.]+)")),
    ("Firefox", re.compile(r"(?:Firefox|FxiOS)/([\d.]+)")),
    ("Chrome", re.compile(r"(?:Chrome|CriOS|HeadlessChrome)/([\d.]+)")),
    ("Safari", re.compile(r"Version/([\d.]+).*Safari/")),
)

_OSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iPadOS", re.compile(r"iPad.*? OS ([\d_]+)")),
    ("iOS", re.compile(r"(?:iPhone|iPod).*? OS ([\d_]+)")),
    ("Android", re.compile(r"Android ([\d.]+)")),
    ("Windows", re.compile(r"Windows NT ([\d.]+)")),
    ("ChromeOS", re.compile(r"CrOS \S+ ([\d.]+)")),
    ("macOS", re.compile(r"Mac OS X ([\d_.]+)")),
    ("Linux", re.compile(r"Linux()")),
)

_WINDOWS_NAMES = {"10.0": "10/11", "6.3": "8.1", "6.2": "8", "6.1": "7"}
_BOT = re.compile(r"bot|crawler|spider|curl|python-requests|aiohttp|headless", re.I)


def _major_minor(version: str) -> str:
    return ".".join(version.replace("_", ".").split(".")[:2])


@functools.lru_cache(maxsize=1024)
def parse_user_agent(ua: str) -> Device:
    """The device a user agent names (a frozen model; most customers of a site share a few
    user agents, so the answers are kept)."""
    browser, browser_version = "Unknown", ""
    for name, pattern in _BROWSERS:
        if match := pattern.search(ua):
            browser, browser_version = name, match.group(1).split(".")[0]
            break
    os_name, os_version = "Unknown", ""
    for name, pattern in _OSES:
        if match := pattern.search(ua):
            os_name, os_version = name, _major_minor(match.group(1))
            break
    if os_name == "Windows":
        os_version = _WINDOWS_NAMES.get(os_version, os_version)
    return Device(
        browser=browser,
        browser_version=browser_version,
        os=os_name,
        os_version=os_version,
        type=_device_type(ua, os_name),
    )


def _device_type(ua: str, os_name: str) -> DeviceType:
    if not ua:
        return "unknown"
    if "HeadlessChrome" not in ua and _BOT.search(ua):
        return "bot"
    if os_name == "iPadOS" or "Tablet" in ua or (os_name == "Android" and "Mobile" not in ua):
        return "tablet"
    if os_name in ("iOS", "Android") or "Mobile" in ua:
        return "mobile"
    if os_name == "Unknown":
        return "unknown"
    return "desktop"
