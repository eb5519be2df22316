"""Tests for qlab.usl (Universal Scalability Law / Amdahl fitting)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qlab.lab.usl import model as usl

N16 = np.arange(1, 17)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize(
    ("lam", "sigma", "kappa", "ns"),
    [
        (1000.0, 0.05, 0.001, N16),
        (50.0, 0.2, 0.01, N16),
        (250.0, 0.02, 0.0005, np.array([2, 4, 8, 12, 16, 24, 32, 48, 64])),
    ],
)
def test_recovers_parameters_from_exact_data(lam, sigma, kappa, ns):
    res = usl.fit(ns, usl.usl(ns, lam, sigma, kappa))
    assert res.model == "usl"
    assert _rel(res.lam, lam) < 0.05
    assert _rel(res.sigma, sigma) < 0.05
    assert _rel(res.kappa, kappa) < 0.05
    assert res.r2 == pytest.approx(1.0)
    assert res.n_points == len(ns) and res.n_levels == len(ns)


def test_recovers_parameters_with_noise_and_repeats():
    rng = np.random.default_rng(12345)
    ns = np.repeat(np.arange(1, 33), 3)  # three repeats per level
    truth = usl.usl(ns, 800.0, 0.08, 0.002)
    noisy = truth * (1 + rng.normal(0.0, 0.01, size=ns.size))
    res = usl.fit(pd.Series(ns), pd.Series(noisy))
    assert _rel(res.lam, 800.0) < 0.10
    assert _rel(res.sigma, 0.08) < 0.10
    assert _rel(res.kappa, 0.002) < 0.10
    assert res.n_points == 96 and res.n_levels == 32
    assert 0.98 < res.r2 < 1.0
    for se in (res.lam_se, res.sigma_se, res.kappa_se):
        assert np.isfinite(se) and se > 0


def test_amdahl_fit():
    ns = list(range(1, 17))
    res = usl.fit(ns, list(usl.usl(ns, 120.0, 0.1, 0.0)), model="amdahl")
    assert res.model == "amdahl"
    assert res.kappa == 0.0 and res.kappa_se == 0.0
    assert _rel(res.sigma, 0.1) < 0.05 and _rel(res.lam, 120.0) < 0.05
    assert res.peak_workers == math.inf
    assert res.peak_throughput == pytest.approx(120.0 / 0.1, rel=0.05)


def test_usl_fit_of_amdahl_data_gives_no_coherency():
    res = usl.fit(N16, usl.usl(N16, 100.0, 0.1, 0.0))
    assert res.kappa == 0.0  # snapped from ~1e-18 to exactly 0
    assert res.peak_workers == math.inf
    assert res.peak_throughput == pytest.approx(1000.0)


def test_peak_and_predict():
    res = usl.USLFit("usl", 1000.0, 0.04, 0.0012, 1.0, 0.001, 0.0001, 0.99, 10, 10)
    expected = math.sqrt((1 - 0.04) / 0.0012)
    assert res.peak_workers == pytest.approx(expected)
    assert res.peak_workers == pytest.approx(28.2843, rel=1e-4)
    assert res.peak_throughput == pytest.approx(usl.usl(expected, 1000.0, 0.04, 0.0012))
    # the peak really is the maximum of the curve
    grid = np.linspace(1, 100, 2000)
    assert res.peak_throughput >= res.predict(grid).max() - 1e-9
    ns = np.array([1, 5, 28, 60])
    np.testing.assert_allclose(res.predict(ns), usl.usl(ns, 1000.0, 0.04, 0.0012))
    assert isinstance(res.predict(3), np.ndarray)
    with pytest.raises(AttributeError):
        res.lam = 5.0  # frozen


def test_peak_edge_cases():
    no_overhead = usl.USLFit("usl", 10.0, 0.0, 0.0, 0, 0, 0, 1.0, 6, 6)
    assert no_overhead.peak_workers == math.inf and no_overhead.peak_throughput == math.inf
    amdahl = usl.USLFit("amdahl", 10.0, 0.5, 0.0, 0, 0, 0, 1.0, 6, 6)
    assert amdahl.peak_throughput == pytest.approx(20.0)


def test_usl_function_scalar_and_vector():
    assert usl.usl(1, 100.0, 0.3, 0.1) == pytest.approx(100.0)
    assert isinstance(usl.usl(4, 100.0, 0.0, 0.0), float)
    np.testing.assert_allclose(usl.usl([1, 2, 4], 10.0, 0.0, 0.0), [10.0, 20.0, 40.0])
    # 2 workers, sigma=0.5, kappa=0.25: 2*10 / (1 + 0.5 + 0.5)
    assert usl.usl(2, 10.0, 0.5, 0.25) == pytest.approx(10.0)


def test_repr_and_to_dict():
    res = usl.fit(N16, usl.usl(N16, 1000.0, 0.05, 0.001))
    text = repr(res)
    assert text.startswith("USLFit(lam=1000 jobs/s, sigma=0.05")
    assert "peak≈30.8 workers" in text and "R²=1.000" in text
    assert str(res) == text
    d = res.to_dict()
    assert d["model"] == "usl" and set(d) >= {"lam", "sigma_se", "r2", "n_levels", "peak_workers"}
    assert all(type(v) in (str, int, float, bool) for v in d.values())
    json.dumps(d)


def test_few_levels_warning():
    ns = [1, 2, 4, 8, 1, 2, 4, 8]
    with pytest.warns(usl.FewLevelsWarning, match="4 distinct"):
        res = usl.fit(ns, usl.usl(ns, 100.0, 0.1, 0.01))
    assert res.n_levels == 4 and res.n_points == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        usl.fit(N16, usl.usl(N16, 100.0, 0.1, 0.01))


def test_three_points_fit_has_nan_standard_errors():
    with pytest.warns(usl.FewLevelsWarning):
        res = usl.fit([1, 2, 4], [100.0, 180.0, 300.0])
    # 3 points, 3 parameters: no degrees of freedom, so the covariance is not estimable
    assert all(math.isnan(v) for v in (res.lam_se, res.sigma_se, res.kappa_se))
    assert res.lam == pytest.approx(100.0)
    with pytest.warns(usl.FewLevelsWarning):
        amd = usl.fit([1, 2, 4], [100.0, 180.0, 300.0], model="amdahl")
    assert np.isfinite(amd.lam_se) and np.isfinite(amd.sigma_se)


@pytest.mark.parametrize(
    ("workers", "throughput", "kwargs", "match"),
    [
        ([1, 2, 3], [1.0, 2.0], {}, "workers and throughput must have the same length"),
        ([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], {}, "workers must be >= 1"),
        ([-1, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], {}, "workers must be >= 1"),
        ([1, 2, 3, 4], [1.0, -0.5, 3.0, 4.0], {}, "throughput must be finite and >= 0"),
        ([1, 2, 3, 4], [1.0, np.nan, 3.0, 4.0], {}, "throughput"),
        ([1, 2], [1.0, 2.0], {}, "workers must hold at least 3 distinct"),
        ([1, 1, 2, 2], [1.0, 1.1, 2.0, 2.1], {}, "workers must hold at least 3 distinct"),
        ([1, 2, 4, 8], [0.0, 0.0, 0.0, 0.0], {}, "throughput is 0 at every worker count"),
        ([1, 2, 4, 8], [1.0, 0.0, 3.0, 4.0], {"noise": "relative"}, "throughput must be > 0"),
        ([1, 2, 4, 8], [1.0, 2.0, 3.0, 4.0], {"noise": "loud"}, "noise must be"),
        ([1, 2, 4, 8], [1.0, 2.0, 3.0, 4.0], {"confidence": 95}, "confidence must be"),
        ([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], {"model": "gustafson"}, "model must be 'usl' or"),
        ([[1, 2], [3, 4]], [1.0, 2.0], {}, "workers must be one-dimensional"),
        (["a", "b", "c"], [1.0, 2.0, 3.0], {}, "workers must be numeric"),
    ],
)
def test_bad_input_raises(workers, throughput, kwargs, match):
    with pytest.raises(ValueError, match=match):
        usl.fit(workers, throughput, **kwargs)


def test_fit_frame_groups_by_backend():
    rows = []
    params = {"threads": (200.0, 0.3, 0.01), "processes": (150.0, 0.02, 0.0005)}
    for backend, (lam, sigma, kappa) in params.items():
        for n in range(1, 13):
            rows.append(
                {"backend": backend, "workers": n, "throughput": usl.usl(n, lam, sigma, kappa)}
            )
    df = pd.DataFrame(rows)
    out = usl.fit_frame(df)
    assert list(out.index) == ["processes", "threads"] and out.index.name == "backend"
    for backend, (lam, sigma, kappa) in params.items():
        assert _rel(out.loc[backend, "lam"], lam) < 0.05
        assert _rel(out.loc[backend, "sigma"], sigma) < 0.05
        assert _rel(out.loc[backend, "kappa"], kappa) < 0.05
    assert (out["n_points"] == 12).all()

    amd = usl.fit_frame(df.rename(columns={"throughput": "x"}), y="x", model="amdahl")
    assert (amd["kappa"] == 0).all() and (amd["model"] == "amdahl").all()
    with pytest.raises(ValueError, match="nope"):
        usl.fit_frame(df, by="nope")


def test_import_is_light():
    # load the module file on its own, so other qlab modules' imports do not interfere
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('usl_light', {usl.__file__!r})\n"
        "mod = sys.modules['usl_light'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "print('scipy' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


FIXTURES = Path(__file__).parent / "fixtures" / "usl"


def _sig3(value: float) -> str:
    return f"{value:.3g}"


def test_standard_errors_match_r_usl_on_specsdm91():
    """R's usl package, summary(usl(throughput ~ load, specsdm91)): see fixtures/usl."""
    data = pd.read_csv(FIXTURES / "specsdm91.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 7 levels, a proper USL shape: no warning
        res = usl.fit(data["load"], data["throughput"])
    assert res.sigma == pytest.approx(0.0277285, rel=1e-4)
    assert res.kappa == pytest.approx(1.044e-4, rel=1e-3)
    assert res.lam == pytest.approx(90.00, rel=1e-3)
    assert (_sig3(res.sigma_se), _sig3(res.kappa_se), _sig3(res.lam_se)) == (
        "0.00912",
        "1.99e-05",
        "14.2",
    )  # R: 9.122e-03, 1.988e-05, 1.421e+01
    assert res.dof == 4 and res.residual_se == pytest.approx(82.85, rel=1e-3)
    assert res.peak_workers == pytest.approx(96.52, rel=1e-3)
    assert res.peak_throughput == pytest.approx(1884, rel=1e-3)
    assert res.sigma_significant and res.kappa_significant  # R: p = 0.038 and 0.006
    low, high = res.peak_workers_ci
    assert low < res.peak_workers < high < math.inf


def test_standard_errors_match_r_usl_on_raytracer_with_kappa_on_its_bound():
    """R's usl: confint(usl(throughput ~ processors, raytracer)) with kappa = 0."""
    data = pd.read_csv(FIXTURES / "raytracer.csv")
    res = usl.fit(data["processors"], data["throughput"])
    assert res.kappa == 0.0 and res.peak_workers == math.inf
    assert res.sigma == pytest.approx(0.0578, abs=5e-5)
    assert res.lam == pytest.approx(21.8488, rel=1e-4)
    r_t = 1.812461  # qt(0.95, 10), R's confint quantile
    assert _sig3(res.sigma_se) == _sig3((0.081864 - 0.033677) / 2 / r_t)
    assert _sig3(res.lam_se) == _sig3((25.829306 - 17.868380) / 2 / r_t)
    assert _sig3(res.kappa_se) == _sig3(0.000214 / r_t)
    assert res.sigma_significant and not res.kappa_significant
    assert res.peak_workers_ci[1] == math.inf  # kappa may be 0: the peak may be anywhere


def test_intervals_contain_the_true_parameters_at_about_the_nominal_rate():
    """Synthetic USL data with 2 % noise, 400 seeded data sets: 95 % Wald intervals."""
    rng = np.random.default_rng(2026)
    ns = np.repeat(np.arange(1, 17), 3)
    truth = usl.usl(ns, 500.0, 0.05, 0.002)
    hits = {"sigma": 0, "kappa": 0, "lam": 0}
    trials = 400
    for _ in range(trials):
        res = usl.fit(ns, truth + rng.normal(0.0, 0.02 * 500.0, ns.size))
        for name, value in (("sigma", 0.05), ("kappa", 0.002), ("lam", 500.0)):
            low, high = getattr(res, f"{name}_ci")
            hits[name] += low <= value <= high
    for name, count in hits.items():
        assert 0.91 <= count / trials <= 0.99, (name, count / trials)


def test_tiny_throughputs_are_normalised_before_fitting():
    """Regression: throughput near 1e-6 left the optimiser at its starting point."""
    ns = N16
    for scale in (1e-9, 1e-6, 1.0, 1e6):
        res = usl.fit(ns, usl.usl(ns, 1000.0, 0.05, 0.001) * scale)
        assert _rel(res.lam, 1000.0 * scale) < 1e-3
        assert _rel(res.sigma, 0.05) < 1e-3 and _rel(res.kappa, 0.001) < 1e-3


def test_negligible_kappa_is_refitted_as_zero_no_fake_peak():
    """Regression: a kappa near 0 but not 0 reported a finite peak far outside the data."""
    ns = N16
    x = usl.usl(ns, 100.0, 0.1, 1e-9)  # kappa's effect at 16 workers: 2e-7 of the total
    res = usl.fit(ns, x)
    assert res.kappa == 0.0 and res.peak_workers == math.inf
    assert _rel(res.sigma, 0.1) < 1e-3
    assert res.model == "usl" and np.isfinite(res.kappa_se)  # kappa's SE, as R gives it


def test_sigma_on_its_bound_for_super_linear_data_warns():
    ns = N16
    with pytest.warns(usl.BoundWarning, match="sigma sits on its lower bound"):
        res = usl.fit(ns, 100.0 * ns**1.2)
    assert res.sigma == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # linear data: sigma is 0, but not super-linear
        assert usl.fit(ns, 100.0 * ns).sigma == 0.0


def test_weighted_fit_for_noise_proportional_to_throughput():
    rng = np.random.default_rng(7)
    ns = np.repeat(np.arange(1, 25), 2)
    truth = usl.usl(ns, 200.0, 0.03, 0.0008)
    noisy = truth * (1 + rng.normal(0.0, 0.03, ns.size))
    rel = usl.fit(ns, noisy, noise="relative")
    assert rel.noise == "relative" and _rel(rel.sigma, 0.03) < 0.3
    assert rel.lam_ci[0] < 200.0 < rel.lam_ci[1]
    lo, hi = rel.band(ns, "prediction")
    inside = np.mean((lo <= noisy) & (noisy <= hi))
    assert inside > 0.85  # a prediction band holds most new measurements
    clo, chi = rel.band(ns, "confidence")
    assert np.all(chi - clo < hi - lo)  # the curve is known better than a new point


def test_bands_widen_outside_the_data_and_are_nan_without_dof():
    res = usl.fit(N16, usl.usl(N16, 1000.0, 0.05, 0.001) * (1 + 0.01 * np.sin(N16)))
    lo, hi = res.band([8, 64])
    assert (hi - lo)[1] > (hi - lo)[0]
    assert np.all(lo <= res.predict([8, 64])) and np.all(res.predict([8, 64]) <= hi)
    with pytest.raises(ValueError, match="kind"):
        res.band([1], kind="magic")
    with pytest.warns(usl.FewLevelsWarning):
        three = usl.fit([1, 2, 4], [100.0, 180.0, 300.0])
    assert np.isnan(three.band([2])[0]).all() and math.isnan(three.sigma_ci[0])


def test_to_dict_reports_intervals_and_significance():
    d = usl.fit(N16, usl.usl(N16, 1000.0, 0.05, 0.001) * (1 + 0.01 * np.cos(N16))).to_dict()
    for name in ("lam", "sigma", "kappa", "peak_workers"):
        assert d[f"{name}_ci_low"] <= d[name] <= d[f"{name}_ci_high"]
    assert d["sigma_significant"] is True and d["kappa_significant"] is True
    assert "cov" not in d and d["confidence"] == 0.95
    json.dumps(d)
    amd = usl.fit(N16, usl.usl(N16, 100.0, 0.1, 0.0) + np.cos(N16), model="amdahl")
    assert amd.kappa_ci == (0.0, 0.0) and not amd.kappa_significant
