"""qlab's pytest plugin, run by pytest itself (pytester): verdicts, the marker, the option.

The checks run in a child pytest with plugin autoloading off and the plugin named with
``-p``, so these tests hold whether or not the installed qlab's entry point is loaded.
They assert on the verdict only (passed, failed, skipped), never on a timing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(300)

CHECKS = """
import threading
import time

LOCK = threading.Lock()


def scales(_):
    time.sleep(0.004)


def holds_a_lock(_):
    with LOCK:  # every worker waits for the one holding it: no speedup at all
        time.sleep(0.004)


def test_sleep_scales(qlab_scaling):
    qlab_scaling.assert_scales(scales, workers=[1, 4], at_least=2.5, jobs=60)


def test_lock_does_not_scale(qlab_scaling):
    qlab_scaling.assert_scales(holds_a_lock, workers=[1, 4], at_least=2.5, jobs=60)


def test_not_a_scaling_check():
    assert True
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_checks=CHECKS)

    def go(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "qlab.pytest_plugin", "-q", *args)

    return go


def test_passes_when_it_scales(run) -> None:
    run("-k", "sleep_scales").assert_outcomes(passed=1, deselected=2)


def test_fails_when_a_lock_serialises_it(run) -> None:
    result = run("-k", "lock_does_not_scale")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*holds_a_lock does not scale: speedup 1 -> 4 workers*"])


def test_inconclusive_is_a_skip_with_the_reason(run, pytester: pytest.Pytester) -> None:
    """A budget of 0 s allows one round; asking for exactly the ideal speedup (4x on
    4 workers), which a real run can only approach, leaves the interval undecided
    or below: never a pass."""
    pytester.makepyfile(
        test_tight="""
import random, time

def noisy(_):
    time.sleep(random.expovariate(1 / 0.003))

def test_tight(qlab_scaling):
    qlab_scaling.assert_scales(noisy, workers=[1, 4], at_least=4.0, jobs=20)
"""
    )
    result = run("--scaling-budget=0", "-rs", "test_tight.py")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0
    if outcomes.get("skipped"):
        result.stdout.fnmatch_lines(["*inconclusive on this machine: noisy: speedup*"])


def test_marker_selects_the_scaling_checks(run) -> None:
    run("-m", "not scaling").assert_outcomes(passed=1, deselected=2)
    run("-m", "scaling", "--co").stdout.fnmatch_lines(
        ["*test_sleep_scales*", "*test_lock_does_not_scale*"]
    )


def test_bad_input_is_named() -> None:
    from qlab.pytest_plugin import ScalingCheck

    with pytest.raises(ValueError, match="workers"):
        ScalingCheck().assert_scales(abs, workers=[4, 1])
    with pytest.raises(ValueError, match="at_least"):
        ScalingCheck().assert_scales(abs, at_least=0)
    with pytest.raises(ValueError, match="budget_s"):
        ScalingCheck(budget_s=-1)


def test_entry_point_declared() -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"qlab": "qlab.pytest_plugin"}
