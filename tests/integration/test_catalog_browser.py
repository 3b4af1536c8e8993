"""The web catalog (``/ui/``) in a real browser: headless Chromium (Debian's) against a real
``reconciler serve`` with an htpasswd file and access rules. Each page is screenshotted;
the screenshot of the element holding each expected name must show ink (not a blank
box), the page's rendered text must hold the names, and must not hold the protected
names the visitor may not read. A phone-sized window must not scroll sideways."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from selenium import webdriver
from selenium.webdriver.common.by import By

from reconciler.store.sqlite import SQLiteStore
from tests.support.browser import as_phone, chromium, sign_in, visible_text
from tests.support.imagegen import build_image, build_multiarch
from tests.support.serving import Server, commit_tags, run_server

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
IMAGES = {"pub/base": build_image("ui-pub"), "prod/app": build_multiarch("ui-prod"),
          "team-b/app": build_image("ui-team-b")}


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui-srv")
    store = SQLiteStore(root / "store")
    try:
        for name, image in IMAGES.items():
            repo_id = name.replace("/", "-")
            commit_tags(store, repo_id, {"1.0": image}, operation="apply sha256:0123456789ab")
            commit_tags(store, repo_id, {"1.0": image, "latest": image}, operation="tag latest")
            store.publish(repo_id, name=name, version=2, protected=name != "pub/base")
    finally:
        store.close()
    pw = root / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                          for u, p in PASSWORDS.items()))
    (root / "access.yaml").write_text("repositories:\n  prod/*: [alice]\n  team-b/*: [bob]\n")
    with run_server(root / "store", root / "server.log", htpasswd=pw, workers=1,
                    serve_args=["--access", str(root / "access.yaml")]) as srv:
        yield srv


def png_ink(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data) of a PNG: a blank or
    missing rendering has one or two values, rendered text many."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def shows(driver: webdriver.Chrome, text: str) -> None:
    """``text`` is rendered: in the page's text, and its element's screenshot has ink."""
    assert text in visible_text(driver), f"{text!r} not on the page:\n{visible_text(driver)}"
    element = driver.find_element(By.XPATH, f"//*[contains(text(), '{text}')]")
    width, height, ink = png_ink(element.screenshot_as_png)
    assert width > 10 and height > 5 and ink > 8, f"{text!r} is not visibly rendered ({width}x{height}, {ink})"


def snapshot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    width, height, ink = png_ink(path.read_bytes())
    assert width >= 300 and height >= 300 and ink > 8, f"{name}: a blank page"


def test_anonymous_visitors_see_public_repositories_only(server: Server, tmp_path: Path) -> None:
    with chromium() as driver:
        driver.get(server.url + "/ui/")
        snapshot(driver, tmp_path, "index-anonymous")
        shows(driver, "pub/base")
        text = visible_text(driver)
        assert "prod/app" not in text and "team-b/app" not in text
        assert "Sign in" in text
        driver.get(server.url + "/ui/r/prod/app")
        snapshot(driver, tmp_path, "protected-anonymous")
        assert "No published repository prod/app that you may read" in visible_text(driver)
        assert str(IMAGES["prod/app"].digest) not in visible_text(driver)


def test_a_signed_in_user_sees_what_the_access_rules_grant(server: Server, tmp_path: Path) -> None:
    with chromium() as driver:
        sign_in(driver, basic("alice"))
        driver.get(server.url + "/ui/")
        snapshot(driver, tmp_path, "index-alice")
        shows(driver, "prod/app")
        shows(driver, "pub/base")
        text = visible_text(driver)
        assert "team-b/app" not in text and "signed in as alice" in text
        driver.get(server.url + "/ui/r/prod/app")
        snapshot(driver, tmp_path, "repository-alice")
        image = IMAGES["prod/app"]
        shows(driver, str(image.digest))  # the full digest, not a short form
        for platform in ("linux/amd64", "linux/arm64/v8", "linux/ppc64le"):  # build_multiarch's children
            assert platform in visible_text(driver)
        shows(driver, f"docker pull {server.host}/prod/app:latest")
        assert f"docker://{server.host}/prod/app@{image.digest}" in visible_text(driver)
        # the history: what each version changed, and how it was made
        history = visible_text(driver).split("History", 1)[1]
        assert "version 2" in history and "tag latest" in history and "+ latest" in history
        assert "apply sha256:0123456789ab" in history
        driver.get(server.url + "/ui/r/team-b/app")
        assert "No published repository team-b/app" in visible_text(driver)


def test_the_repository_page_fits_a_phone(server: Server, tmp_path: Path) -> None:
    with chromium() as driver:
        as_phone(driver)
        sign_in(driver, basic("alice"))
        for path in ("/ui/", "/ui/r/prod/app", "/ui/r/pub/base"):
            driver.get(server.url + path)
            snapshot(driver, tmp_path, "phone" + path.replace("/", "-"))
            width, overflow = driver.execute_script(
                "const e = document.documentElement; return [e.clientWidth, e.scrollWidth - e.clientWidth]")
            assert width == 390, "the phone emulation did not take"
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"


def test_sign_in_wrong_passwords_and_writes(server: Server) -> None:
    r = requests.get(server.url + "/ui/login", timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    r = requests.get(server.url + "/ui/login", auth=("alice", PASSWORDS["alice"]), timeout=10,
                     allow_redirects=False)
    assert (r.status_code, r.headers["Location"]) == (303, "/ui/")
    r = requests.get(server.url + "/ui/", auth=("alice", "wrong"), timeout=10)
    assert r.status_code == 401 and "not accepted" in r.text
    r = requests.post(server.url + "/ui/r/pub/base", timeout=10)
    assert r.status_code == 405
    page = requests.get(server.url + "/ui/r/pub/base", timeout=10)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in page.text
