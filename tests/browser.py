"""Render an HTML file in headless Chromium (Debian's ``chromium``): the DOM after load,
a screenshot, and the browser's console errors.  Tests skip with a reason without it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(c) for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
          "--no-first-run", "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0",
          "--virtual-time-budget=10000"]


@dataclass
class Rendered:
    dom: str
    png: Path
    console_errors: list[str]


def need_chromium() -> str:
    if CHROMIUM is None:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; .ci/run installs it)")
    return CHROMIUM


def render(page: Path, png: Path, width: int = 1280, height: int = 3000) -> Rendered:
    exe = need_chromium()
    url = page.resolve().as_uri()
    profile = png.parent / "chromium-profile"
    common = [exe, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run([*common, f"--screenshot={png}", url], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    errors = [l for l in (dom.stderr + shot.stderr).splitlines()
              if "CONSOLE" in l and re.search(r"error|uncaught", l, re.I)]
    return Rendered(dom.stdout, png, errors)


def assert_renders(page: Path, tmp_path: Path) -> Rendered:
    """The page loads with every image decoded, no console error, and a screenshot that
    is not blank."""
    import matplotlib.image as mpimg

    r = render(page, tmp_path / "shot.png")
    n_img = len(re.findall(r"<img\b", page.read_text()))
    assert n_img > 0
    assert f'data-kofn-ready="{n_img}"' in r.dom, "the page's load handler did not run"
    assert 'data-kofn-broken="0"' in r.dom, re.search(r'data-kofn-broken="\d+"', r.dom)
    assert not r.console_errors, r.console_errors
    img = mpimg.imread(r.png)
    assert img.shape[0] > 500 and img.shape[1] > 500
    ink = (img[..., :3].mean(axis=2) < 0.9).mean()  # fraction of non-white pixels
    assert ink > 0.005, f"screenshot is nearly blank ({ink:.3%} ink)"
    return r
