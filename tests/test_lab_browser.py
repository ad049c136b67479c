"""The lab as a person meets it: JupyterLab in headless Chromium, notebook 07 run from the menu, an edit
typed into the widget's boxes, **apply** pressed, the message and the drawn images read off the page.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped, saying so,
where they are absent. JupyterLab runs on a free port with a token, from a temporary folder holding a
copy of the notebook (figures to a temporary folder too), so the checkout is left as it was. A
screenshot of the lab after the edit goes to that temporary folder and to ``/tmp/lab_screenshot.png``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07_widget_lab.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = Path("/tmp/lab_screenshot.png")
SERVER_TIMEOUT = 180  # JupyterLab's first start builds its caches
RUN_TIMEOUT = 600  # the whole notebook, on a busy 2-core machine
APPLY_TIMEOUT = 180

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def untracked() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return {line for line in out.splitlines() if line.startswith("??")}


@pytest.fixture
def jupyter(tmp_path):
    """JupyterLab serving a copy of notebook 07 from a temporary folder; killed afterwards."""
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, OMP_NUM_THREADS="1", TIMELAB_FIGURES_DIR=str(tmp_path / "figures"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--ServerApp.allow_root=True",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start:\n{(tmp_path / 'jupyter.log').read_text()[-3000:]}")
                time.sleep(1)
        yield {"url": f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}", "dir": tmp_path}
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2200"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_person_runs_the_lab_and_applies_an_edit(jupyter, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = untracked()
    driver = browser
    driver.get(jupyter["url"])
    wait = WebDriverWait(driver, SERVER_TIMEOUT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"))
    # the kernel must be up before Run All (the status bar says Idle)
    wait.until(lambda d: "Idle" in d.find_element(By.CSS_SELECTOR, ".jp-StatusBar-Widget, #jp-main-statusbar").text)

    # Run > Run All Cells, from the menu bar
    run_menu = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel")
                                     if e.text == "Run"])
    run_menu[0].click()
    item = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
                                 if e.text == "Run All Cells"])
    item[0].click()

    def prompts(d):
        return [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputPrompt")]

    WebDriverWait(driver, RUN_TIMEOUT).until(
        lambda d: (p := prompts(d)) and all(t.startswith("[") and t[1:-2].isdigit() for t in p),
        message="the notebook did not finish running")
    errors = driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText, "
                                                   ".jp-OutputArea-output[data-mime-type*='error']")
    assert not [e for e in errors if "Traceback" in e.text], "a cell failed: " + "\n".join(e.text for e in errors)

    def box(label: str, kind: str = "input"):
        return driver.find_element(By.XPATH, f"//div[contains(@class,'widget-inline-hbox')][.//label[normalize-space()="
                                              f"'{label}']]//{kind}")

    apply = WebDriverWait(driver, 60).until(
        lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "button.jupyter-button") if b.text == "apply"])[0]
    images_before = [i.get_attribute("src") for i in driver.find_elements(By.CSS_SELECTOR, ".widget-image")]
    for label, text in (("source", "a triangle"), ("destination", "a purple triangle")):
        field = box(label)
        field.clear()
        field.send_keys(text)
    prompts_box = box("test prompts", "textarea")
    prompts_box.clear()
    prompts_box.send_keys("a triangle, a triangle on the left and a circle on the right, a zebra")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", apply)
    apply.click()

    def texts(d):
        return [e.get_attribute("textContent").strip() for e in d.find_elements(By.CSS_SELECTOR, ".widget-html-content")]

    def message(d):
        found = [t for t in texts(d) if t.startswith("Applied 'a triangle' -> 'a purple triangle'")]
        return found[0] if found else None

    try:
        text = WebDriverWait(driver, APPLY_TIMEOUT).until(message)
    except Exception:
        driver.save_screenshot(str(SCREENSHOT))
        raise AssertionError(f"no message about the typed edit; the lab says {texts(driver)}") from None
    assert "Judged over 8 seeds: 'a triangle': triangle purple in " in text, text
    assert "'zebra'" in text and "Warning" in text, "the unknown word should be named in the message"
    table = driver.find_element(By.XPATH, "//table[.//th[normalize-space()='test prompt']]").text
    assert "triangle purple:" in table and "circle purple:" in table and "Weights moved" in driver.page_source
    WebDriverWait(driver, 60).until(lambda d: [i.get_attribute("src") for i in d.find_elements(By.CSS_SELECTOR, ".widget-image")]
                                    != images_before, message="the images were not redrawn")
    images = driver.find_elements(By.CSS_SELECTOR, ".widget-image")
    assert len(images) == 2, "the lab shows the images over seeds and one prompt's attention maps"
    sizes = [driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", i) for i in images]
    assert all(w > 200 and h > 200 for w, h in sizes), f"images not drawn: {sizes}"
    choice = driver.find_element(By.CSS_SELECTOR, ".widget-dropdown select")
    shown = driver.execute_script("return arguments[0].options[arguments[0].selectedIndex].text", choice)
    assert shown.replace("\xa0", " ") == "a triangle", "the attention choice should move to the typed prompts"

    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});",
                          driver.find_element(By.XPATH, "//table[.//th[normalize-space()='test prompt']]"))
    time.sleep(1)
    shot = jupyter["dir"] / "lab.png"
    assert driver.save_screenshot(str(shot))
    shutil.copy(shot, SCREENSHOT)
    assert untracked() == before, "the browser test must leave no files in the checkout"
