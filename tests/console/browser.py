"""The browser tests' helper: Debian's Chromium driven by selenium through Debian's
chromedriver (never a downloaded browser), headless, with a fresh profile; screenshots; axe.

`missing()` says why there is no browser (then the browser tests skip with that reason);
.ci/run installs `chromium` and `chromium-driver` when they are missing.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1000,720")
SCREENSHOTS_ENV = "MADRE_CONSOLE_SCREENSHOTS"  # a folder: keep the README's screenshots there
AXE = pathlib.Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not shutil.which(path):
            return f"{path} is missing: apt-get install -y chromium chromium-driver ({package})"
    return None


def start_chromium(profile: pathlib.Path) -> Any:
    """A headless Chromium with the profile folder `profile`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")  # selenium reports nothing anywhere
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def screenshot(driver: Any, name: str, fallback: pathlib.Path) -> pathlib.Path:
    """A PNG of the window, into MADRE_CONSOLE_SCREENSHOTS when set (`docs`, for the
    README), else into `fallback`."""
    folder = pathlib.Path(os.environ.get(SCREENSHOTS_ENV) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(driver.get_screenshot_as_png())
    return path


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """What axe-core finds on the page open in `driver` (WCAG 2 A and AA rules)."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', "
        "'wcag21a', 'wcag21aa', 'best-practice']}})"
        ".then(r => done({passes: r.passes.length, violations: r.violations}),"
        " e => done({passes: 0, violations: [{id: 'axe-failed', help: String(e), nodes: []}]}));")
    assert result["passes"] > 10 or result["violations"], "axe-core did not run"
    return [{"id": v["id"], "impact": v.get("impact"), "help": v["help"],
             "nodes": [n.get("target") for n in v["nodes"]][:3]} for v in result["violations"]]
