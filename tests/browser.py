"""Headless Chromium for tests that must see a page as a browser does.

Debian's ``chromium`` package is used, nothing a test tool downloads: it is
found at /usr/bin/chromium (or on PATH), and installed with apt-get when it is
missing and this process may install packages. Where that cannot be done the
test is skipped with the reason, except when ``AUTOOPT_REQUIRE_BROWSER=1``
(``.ci/run`` sets it): then a missing browser fails the test, so CI can never
pass by skipping it.

The browser runs as a plain subprocess with ``--dump-dom`` (the DOM after the
page's load event, i.e. after any script would have run) or ``--screenshot``;
no Python driver is needed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
OTHER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
REQUIRE_ENV = "AUTOOPT_REQUIRE_BROWSER"
INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 120
# As root Chromium needs --no-sandbox; the rest keep it from calling out to
# Google's services at start (this machine's network refuses them, loudly).
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
)


def chromium() -> Path:
    """The browser's executable; skips (or fails, in CI) the test without one."""
    found, problem = _find_or_install()
    if found is not None:
        return found
    message = f"headless Chromium is not available: {problem}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)")
    pytest.skip(message)


@functools.cache
def _find_or_install() -> tuple[Path | None, str]:
    found = _find()
    if found is not None:
        return found, ""
    problem = _install()
    return _find(), problem or "apt-get reported success, yet no chromium executable was found"


def _find() -> Path | None:
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    for name in OTHER_NAMES:
        path = shutil.which(name)
        if path is not None:
            return Path(path)
    return None


def _install() -> str | None:
    """Install Debian's chromium; None on success, else why it could not be done."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return "no apt-get on this machine to install the 'chromium' package"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install the 'chromium' package"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Waits on a concurrent apt (another test process installing) instead of failing at once.
    install = [apt_get, "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "chromium"]
    if _run(install, env) is None:
        return None
    # A machine whose package lists were never fetched knows no 'chromium' yet.
    update = [apt_get, "-o", "DPkg::Lock::Timeout=600", "update", "-q"]
    problem = _run(update, env) or _run(install, env)
    return None if problem is None else f"apt-get install chromium failed: {problem}"


def _run(command: list[str], env: dict[str, str]) -> str | None:
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {done.returncode}"


def _browse(page: Path, *flags: str) -> str:
    with tempfile.TemporaryDirectory(prefix="autoopt-chromium-") as profile:
        done = subprocess.run(
            [str(chromium()), *FLAGS, f"--user-data-dir={profile}", *flags, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def dump_dom(page: Path) -> str:
    """The page's DOM, serialized after it loaded.

    The virtual-time budget lets timers and image error handlers fire before the
    dump, so a script or an ``onerror`` that ran would show in what is returned.
    """
    return _browse(page, "--virtual-time-budget=3000", "--dump-dom")


def screenshot(page: Path, target: Path, width: int = 1200, height: int = 2000) -> Path:
    _browse(page, f"--screenshot={target}", f"--window-size={width},{height}")
    assert target.is_file() and target.stat().st_size > 0, f"no screenshot at {target}"
    return target
