"""Refresh the explorer's pictures in ``docs/``: mid-run, and after a sweep.

The same JupyterLab and headless Chromium as the browser test, over a one-cell notebook
that shows the app; the screenshots are of the app's element only.

Usage:
    python -m tests.browser.screenshots docs/
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.lab import chromium, jupyter_lab, open_notebook, run_all, wait_until_executed

APP = (
    "import qlab\n"
    "app = qlab.explore(workload='sleep', ms=4, workers=8, jobs=6000, transient=0.05,\n"
    "                   sweep_workers=(1, 12), sweep_jobs=600, repeats=2)\n"
    "app"
)


def _notebook(path: Path) -> None:
    cell = {
        "cell_type": "code",
        "metadata": {},
        "source": APP,
        "outputs": [],
        "execution_count": None,
    }
    nb = {
        "cells": [cell],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(nb))


def _click(driver, xpath: str) -> None:
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.XPATH, xpath)).click()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root, home = Path(tmp, "nb"), Path(tmp, "home")
        root.mkdir(), home.mkdir()
        _notebook(root / "explorer.ipynb")
        with jupyter_lab(root, home) as lab, chromium(Path(tmp, "profile"), size=(1100, 2400)) as d:
            open_notebook(d, lab, "explorer.ipynb")
            run_all(d)
            wait_until_executed(d, timeout=60)
            app = WebDriverWait(d, 30).until(
                lambda d: d.find_element(By.CSS_SELECTOR, ".qlab-explorer")
            )
            _click(d, "//button[contains(@class,'widget-button')][normalize-space()='Run']")
            # mid-run: a third or more of the jobs done, the live view still running
            count = re.compile(r"([\d,]+) / ([\d,]+) completed")

            def share(d) -> float:
                m = count.search(d.find_element(By.CSS_SELECTOR, ".qlab-explorer .qlab-live").text)
                return int(m[1].replace(",", "")) / int(m[2].replace(",", "")) if m else 0.0

            WebDriverWait(d, 60, poll_frequency=0.1).until(lambda d: share(d) > 0.35)
            app.screenshot(str(out / "explorer-running.png"))
            WebDriverWait(d, 120).until(lambda d: "run finished" in app.text)
            _click(d, "//div[contains(@class,'widget-tab')]//li[normalize-space()='Sweep']")
            _click(d, "//button[contains(@class,'widget-button')][normalize-space()='Sweep']")
            WebDriverWait(d, 300).until(lambda d: "sweep finished" in app.text)
            d.execute_script("arguments[0].scrollIntoView()", app)
            app.screenshot(str(out / "explorer-sweep.png"))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
