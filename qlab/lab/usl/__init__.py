"""The Universal Scalability Law: a model of throughput against concurrency, fitted
with intervals (``qlab.usl``).

``X(N) = λN / (1 + σ(N − 1) + κN(N − 1))``: λ is the throughput of one worker, σ the
share of the work that is serial (contention), κ the cost of keeping workers coherent
(crosstalk), which makes throughput fall past a peak.

Example:
    >>> from qlab import usl
    >>> round(float(usl.usl(4, lam=100.0, sigma=0.0, kappa=0.0)), 6)
    400.0
"""

from qlab.lab.usl.fitting import BoundWarning, FewLevelsWarning, MisfitWarning, USLFit, usl
from qlab.lab.usl.model import *  # noqa: F403
from qlab.lab.usl.model import __all__ as _model_all

__all__ = ["BoundWarning", "FewLevelsWarning", "MisfitWarning", "USLFit", "usl", *_model_all]
