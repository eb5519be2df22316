"""JupyterLab on loopback and headless Chromium, started for a test and stopped by PID.

Used by the fixtures in ``conftest.py`` and by ``screenshots.py`` (which refreshes the
pictures in ``docs/``). Nothing here downloads a browser: it drives Debian's
``chromium`` with ``chromedriver`` (``.ci/run`` installs both when they are missing).

Example:
    >>> with jupyter_lab(root) as lab, chromium(profile) as driver:  # doctest: +SKIP
    ...     open_notebook(driver, lab, "05-explorer.ipynb")
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# the flags this machine needs: no sandbox as root, no GPU, and no calls home (the
# network is closed: without them Chromium retries refused connections all the time)
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)
# JupyterLab settings for a test: every cell in the DOM (no windowing), no news toast
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class Lab:
    """A running JupyterLab: its base URL, token, notebook folder and process."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen


def stop_tree(pid: int, timeout: float = 10.0) -> None:
    """Stop a process and all its descendants by PID: SIGTERM, then SIGKILL."""
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    family = [*proc.children(recursive=True), proc]
    for p in reversed(family):  # the parent first: a server shuts its kernels down
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=timeout)


@contextlib.contextmanager
def jupyter_lab(root: Path, home: Path, *, timeout: float = 60.0) -> Iterator[Lab]:
    """Start JupyterLab on 127.0.0.1 (random free port, a token) serving ``root``.

    Its settings, workspaces and runtime files live in ``home``; kernels inherit
    ``QLAB_SMALL=1``. The server and its kernels are stopped by PID on exit.
    """
    settings = home / "settings"
    for name, values in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), free_port()
    env = {
        **os.environ,
        "QLAB_SMALL": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI and this machine run as root
        cmd.append("--allow-root")
    log = (home / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        lab = Lab(f"http://127.0.0.1:{port}", token, root, proc)
        _wait_for_server(lab, timeout, home / "jupyterlab.log")
        yield lab
    finally:
        stop_tree(proc.pid)
        log.close()


def _wait_for_server(lab: Lab, timeout: float, log: Path) -> None:
    ready = threading.Event()  # never set: its wait() is the pause between polls
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError):
            ready.wait(0.25)
    raise TimeoutError(f"JupyterLab did not answer in {timeout} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def chromium(profile: Path, *, size: tuple[int, int] = (1280, 1000)) -> Iterator[Any]:
    """Headless Debian Chromium driven by chromedriver (selenium), with a fresh profile.

    The driver and every browser process are stopped by PID on exit.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.add_argument(f"--user-data-dir={profile}")
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    pid = service.process.pid
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            stop_tree(pid)


def open_notebook(
    driver: Any, lab: Lab, name: str, timeout: float = 60.0, *, kernel: bool = True
) -> None:
    """Open ``name`` in JupyterLab and wait until its cells are on the page (and, with
    ``kernel``, until its kernel is idle)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell")
    )

    if not kernel:
        return

    def kernel_ready(d: Any) -> bool:
        # JupyterLab sometimes asks which kernel to start (before it has read the
        # kernel specs): take the one it proposes, the notebook's own
        for button in d.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept"):
            button.click()
            return False
        status = d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel-toolbar .jp-KernelStatus")
        text = " ".join(e.get_attribute("title") or e.text for e in status)
        bar = d.find_element(By.CSS_SELECTOR, "#jp-main-statusbar").text
        return "Idle" in bar or "Idle" in text

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(kernel_ready)


def run_all(driver: Any, timeout: float = 60.0) -> None:
    """Run > Run All Cells, from JupyterLab's menu bar."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    menu = wait.until(
        lambda d: d.find_element(
            By.XPATH, "//li[contains(@class,'lm-MenuBar-item')][normalize-space()='Run']"
        )
    )
    menu.click()
    item = wait.until(
        lambda d: d.find_element(
            By.CSS_SELECTOR,
            "li[data-command='runmenu:run-all'], li[data-command='notebook:run-all-cells']",
        )
    )
    item.click()


def wait_until_executed(driver: Any, timeout: float) -> None:
    """Wait until every code cell of the open notebook shows an execution number."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = """
        const ps = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')];
        return ps.map(p => p.textContent.trim());
    """

    errors = """
        return [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')]
            .filter(o => o.textContent.includes('Traceback')).map(o => o.textContent);
    """

    def done(d: Any) -> bool:
        failed = d.execute_script(errors)
        if failed:  # Run All stops at a failing cell: say which error, do not wait
            raise AssertionError(f"a cell failed in the browser:\n{failed[0][-3000:]}")
        prompts = d.execute_script(script)
        return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts)

    WebDriverWait(driver, timeout, poll_frequency=0.5).until(done)
