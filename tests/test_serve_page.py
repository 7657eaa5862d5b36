"""The endpoint's web page in headless Chromium (selenium, Debian's chromium + chromedriver), against a
real token-protected endpoint whose checkpoint's held-out split provides the example images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported (NOTES-stack.md)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local tests only

import pytest  # noqa: E402

from tests.helpers import REPO, sample_photo, tiny_batches, tiny_config, write_tiny_dataset  # noqa: E402

pytestmark = pytest.mark.timeout(180)
TOKEN = "page-token-51c2"
ARTIFACTS = Path(os.environ.get("CROSSNET_TEST_ARTIFACTS", REPO / "test-artifacts"))
LOADED = ("const i = document.getElementById(arguments[0]);"
          "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;")
BROKEN = "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;"


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from crossnet_dist.config import load_config
    from crossnet_dist.ports import free_port
    from crossnet_dist.serving.server import start_endpoint, stop_endpoint
    from crossnet_dist.training.loop import Trainer

    tmp = tmp_path_factory.mktemp("page")
    data = write_tiny_dataset(tmp / "data")
    Trainer(tiny_config(tmp, "train.max_steps=2", f"data.root={data}")).fit(tiny_batches(2))
    cfg = load_config(None, ["serve.cpus_per_replica=1", f"serve.port={free_port()}", f"serve.token={TOKEN}"])
    endpoint = start_endpoint(str(tmp / "run" / "generator.pt"), cfg.serve, num_cpus=2)
    try:
        yield endpoint.url
    finally:
        stop_endpoint(endpoint)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and chromedriver, "chromium/chromedriver missing: `make setup` installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(arg)
    os.environ["SE_OFFLINE"] = "true"  # selenium must never try to download a driver or browser
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def open_with_token(driver, url):
    from selenium.webdriver.common.by import By

    driver.get(url + "/")
    wait(driver, lambda d: "token" in d.find_element(By.ID, "status").text)
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "token-apply").click()
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#examples button")) > 0)


def test_the_page_asks_for_the_token_in_words_and_shows_no_broken_image(browser, url):
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    status = wait(browser, lambda d: d.find_element(By.ID, "status") if "token" in d.find_element(By.ID, "status").text
                  else None)
    assert "needs an access token" in status.text and status.get_attribute("class") == "error"
    assert browser.find_element(By.ID, "token-box").get_attribute("open") is not None
    assert not browser.find_element(By.ID, "results").is_displayed()
    assert browser.execute_script(BROKEN) == 0


def test_with_the_token_the_model_facts_and_held_out_examples_appear(browser, url):
    from selenium.webdriver.common.by import By

    open_with_token(browser, url)
    facts = browser.find_element(By.ID, "facts").text
    for expected in ("crossnet", "torch", "32 px", "EMA weights", "step", "checkpoint"):
        assert expected in facts
    assert len(browser.find_elements(By.CSS_SELECTOR, "#examples button")) == 6  # 3 per domain of testA/testB
    assert browser.execute_script(BROKEN) == 0


def test_an_example_chosen_with_the_keyboard_translates_both_ways_with_download_links(browser, url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_with_token(browser, url)
    first = browser.find_elements(By.CSS_SELECTOR, "#examples button")[0]
    first.send_keys(Keys.ENTER)  # a focused button: the keyboard, not a click
    sizes = {d: wait(browser, lambda b, d=d: b.execute_script(LOADED, f"out-{d}")) for d in ("a2b", "b2a")}
    assert sizes == {"a2b": [36, 36], "b2a": [36, 36]}  # the held-out images' own size
    link = browser.find_element(By.ID, "download-a2b")
    assert link.get_attribute("download") == "a_000_a2b.png" and link.get_attribute("href").startswith("blob:")
    assert "Done" in browser.find_element(By.ID, "status").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "translation-page.png"))


def test_an_uploaded_photo_translates_at_full_resolution(browser, url, tmp_path):
    from selenium.webdriver.common.by import By

    upload = tmp_path / "photo.jpg"
    sample_photo("flower.jpg").resize((96, 64)).save(upload)
    open_with_token(browser, url)
    browser.find_element(By.ID, "res-full").click()
    browser.find_element(By.ID, "file").send_keys(str(upload))
    sizes = {d: wait(browser, lambda b, d=d: b.execute_script(LOADED, f"out-{d}")) for d in ("a2b", "b2a")}
    assert sizes == {"a2b": [96, 64], "b2a": [96, 64]}


def test_a_file_that_is_no_image_gets_an_error_in_words_and_no_broken_image(browser, url, tmp_path):
    from selenium.webdriver.common.by import By

    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    open_with_token(browser, url)
    browser.find_element(By.ID, "file").send_keys(str(fake))
    status = wait(browser, lambda d: d.find_element(By.ID, "status")
                  if d.find_element(By.ID, "status").get_attribute("class") == "error" else None)
    assert "could not be translated" in status.text and "Traceback" not in status.text
    assert browser.execute_script(BROKEN) == 0
