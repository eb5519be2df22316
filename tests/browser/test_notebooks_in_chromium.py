"""The notebooks as a reader meets them: JupyterLab and headless Chromium, for real.

JupyterLab runs on 127.0.0.1 (random port, a token) over a copy of the notebooks, and
Debian's Chromium, driven by selenium through chromedriver, opens notebook 05, runs all
its cells, clicks Run in the explorer and waits for the live view to count every job
requested; then it opens notebook 02 and checks that its charts are on the page. The
server, its kernels and the browser are stopped by PID at the end, pass or fail.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.browser.lab import (
    CHROMEDRIVER,
    CHROMIUM,
    chromium,
    jupyter_lab,
    open_notebook,
    run_all,
    wait_until_executed,
)

pytest.importorskip("selenium")
pytest.importorskip("jupyterlab")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are needed (.ci/run installs them)",
        allow_module_level=True,
    )

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
pytestmark = pytest.mark.timeout(240)  # a bound against a hang; the test takes well under 90 s


@pytest.fixture
def lab(tmp_path):
    """JupyterLab over a copy of the notebooks (Run All must not touch the committed ones)."""
    root = tmp_path / "notebooks"
    root.mkdir()
    for name in ("02-scaling.ipynb", "05-explorer.ipynb"):
        shutil.copy(NOTEBOOKS / name, root / name)
    home = tmp_path / "jupyter"
    home.mkdir()
    with jupyter_lab(root, home) as server:
        yield server


@pytest.fixture
def browser(tmp_path):
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def _page_text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def _stored_images(path: Path) -> int:
    cells = json.loads(path.read_text())["cells"]
    return sum("image/png" in out.get("data", {}) for c in cells for out in c.get("outputs", []))


def test_explorer_runs_in_a_real_browser_and_notebook_02_shows_its_charts(lab, browser, tmp_path):
    driver = browser
    open_notebook(driver, lab, "05-explorer.ipynb")
    run_all(driver)
    wait_until_executed(driver, timeout=120)

    # done: the live view counts every job requested, and says the run is done
    pattern = re.compile(r"([\d,]+) / ([\d,]+) completed")

    def finished(d):
        # the explorer's live view of runs (the Sweep tab's is hidden: its text is "")
        text = " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, selector))
        counts = pattern.findall(text)
        app = " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, ".qlab-explorer"))
        settled = "run finished" in app  # the results are shown and the buttons are back
        return settled and "done" in text and bool(counts) and all(a == b for a, b in counts)

    # the explorer is live after Run All: back to its Run tab, and click Run
    wait = WebDriverWait(driver, 60, poll_frequency=0.25)
    tab = wait.until(
        lambda d: d.find_element(
            By.XPATH,
            "//div[contains(@class,'widget-tab')]//li[contains(@class,'lm-TabBar-tab')]"
            "[normalize-space()='Run']",
        )
    )
    tab.click()
    button = wait.until(
        lambda d: d.find_element(
            By.XPATH, "//button[contains(@class,'widget-button')][normalize-space()='Run']"
        )
    )
    wait.until(lambda d: button.is_enabled())
    selector = ".qlab-explorer .qlab-live"
    assert not finished(driver)  # the notebook's last run was stopped
    button.click()

    wait.until(finished)
    shot = tmp_path / "explorer.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert "Error displaying widget" not in _page_text(driver)
    assert "Error displaying widget" not in driver.page_source

    # notebook 02, as committed: its stored charts render as images
    expected = _stored_images(lab.root / "02-scaling.ipynb")
    assert expected > 0
    open_notebook(driver, lab, "02-scaling.ipynb", kernel=False)  # read, not run
    WebDriverWait(driver, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")) >= expected
    )
    driver.save_screenshot(str(tmp_path / "notebook-02.png"))
