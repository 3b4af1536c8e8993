"""Headless Chromium from Debian, driven through Debian's chromedriver by Selenium.

Both binaries come from the Debian packages ``chromium`` and ``chromium-driver``
(scripts/setup.sh installs them); Selenium is given their paths, so it never tries to
download a browser or a driver. The flags are the ones this machine needs: no sandbox
(tests run as root), no GPU, and no background networking (the network is closed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.support.serving import require_binary

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    binary = require_binary("chromium", "chromium")
    driver_path = require_binary("chromedriver", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def sign_in(driver: webdriver.Chrome, authorization: str | None) -> None:
    """Send this ``Authorization`` header with every request from now on, as the browser
    does after its Basic sign-in prompt (which a headless browser cannot show)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                           {"headers": {"Authorization": authorization} if authorization else {}})


def visible_text(driver: webdriver.Chrome) -> str:
    """What the page shows (innerText follows the rendering: hidden elements are left out)."""
    return str(driver.execute_script("return document.body.innerText"))


def as_phone(driver: webdriver.Chrome, width: int = 390, height: int = 844) -> None:
    """Lay pages out as a phone of this size does (a desktop window cannot be made that narrow)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
