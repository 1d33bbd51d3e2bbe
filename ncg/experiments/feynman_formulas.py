"""Equations of the AI Feynman "Feynman" set, written in numpy with their variable ranges.

Udrescu & Tegmark (2020), *AI Feynman: a physics-inspired method for symbolic regression*
(Science Advances 6, eaay2631), list 100 equations of the Feynman Lectures with the ranges their
variables are drawn from (``FeynmanEquations.csv`` of their data release). :data:`FORMULAS`
holds 32 of them, from 1 to 9 variables, each as a :class:`Formula`: the equation number as its
id, the numpy function, the variable names in the table's order and one uniform range per
variable. The ranges are those of the published table as far as this module's authors recall
them; most are ``U(1, 5)``. Where a range is not known for certain the formula's ``note`` says
so and the range is ``U(1, 5)`` (or the nearest range that keeps the formula real).
:func:`sample` draws a data set from a formula with a seed; nothing is downloaded.

Examples
--------
>>> f = FORMULAS["I.12.1"]
>>> f.variables, f.ranges
(('mu', 'Nn'), ((1.0, 5.0), (1.0, 5.0)))
>>> float(f(np.array([[2.0, 3.0]]))[0])
6.0
>>> x, y = sample(f, 4, seed=0)
>>> x.shape, y.shape
((4, 2), (4,))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ncg.errors import NCGError

__all__ = ["Formula", "FORMULAS", "sample", "get_formula"]

pi = np.pi
sqrt, exp, sin, cos, tanh, arcsin = np.sqrt, np.exp, np.sin, np.cos, np.tanh, np.arcsin


@dataclass(frozen=True)
class Formula:
    """One equation: ``id`` (its number in the Feynman Lectures, as AI Feynman names it), the
    function of the columns ``x[:, i]`` in the order of ``variables``, and one uniform sampling
    range ``(low, high)`` per variable.

    Attributes
    ----------
    id : str
        The equation number, e.g. ``"I.6.2a"`` or ``"II.6.15a"``.
    expression : str
        The formula as text (AI Feynman's spelling).
    function : callable
        ``f(*columns) -> values``, numpy, elementwise.
    variables : tuple of str
        Variable names, in the table's order.
    ranges : tuple of (float, float)
        Uniform sampling range of each variable.
    note : str
        Empty, or what is uncertain about the range.

    Examples
    --------
    >>> f = Formula("demo", "x*y", lambda x, y: x * y, ("x", "y"), ((1, 2), (1, 2)))
    >>> f.num_variables, float(f(np.array([[1.5, 2.0]]))[0])
    (2, 3.0)
    """

    id: str
    expression: str
    function: Callable[..., np.ndarray]
    variables: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.variables) != len(self.ranges):
            raise NCGError(f"formula {self.id}: {len(self.variables)} variables but {len(self.ranges)} ranges")
        ranges = tuple((float(lo), float(hi)) for lo, hi in self.ranges)
        if any(not lo < hi for lo, hi in ranges):
            raise NCGError(f"formula {self.id}: every range must be (low, high) with low < high, got {ranges}")
        object.__setattr__(self, "ranges", ranges)

    @property
    def num_variables(self) -> int:
        """How many inputs the formula takes."""
        return len(self.variables)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The formula on the rows of ``x`` ``[n, num_variables]`` (float64), shape ``[n]``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.num_variables:
            raise NCGError(f"formula {self.id} takes x of shape [n, {self.num_variables}], got {list(x.shape)}")
        return np.asarray(self.function(*x.T), dtype=np.float64)


def sample(formula: Formula, num_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` inputs drawn uniformly from the formula's ranges and their values.

    Returns
    -------
    (x, y) : ndarray ``[num_points, num_variables]`` and ``[num_points]``, float64.

    Examples
    --------
    >>> x, y = sample(FORMULAS["I.6.2a"], 3, seed=1)
    >>> bool(((x >= 1) & (x <= 3)).all()), np.allclose(y, np.exp(-x[:, 0] ** 2 / 2) / np.sqrt(2 * np.pi))
    (True, True)
    """
    if not isinstance(num_points, int) or num_points < 1:
        raise NCGError(f"num_points must be an int >= 1, got {num_points!r}")
    rng = np.random.default_rng(seed)
    low, high = (np.array(side) for side in zip(*formula.ranges))
    x = rng.uniform(low, high, size=(num_points, formula.num_variables))
    return x, formula(x)


_U15 = (1.0, 5.0)


def _f(id: str, expression: str, function: Callable[..., np.ndarray], variables: str,
       ranges: tuple[tuple[float, float], ...] | None = None, note: str = "") -> Formula:
    names = tuple(variables.split())
    return Formula(id, expression, function, names, ranges or (_U15,) * len(names), note)


_LIST = [
    _f("I.6.2a", "exp(-theta**2/2)/sqrt(2*pi)", lambda theta: exp(-theta ** 2 / 2) / sqrt(2 * pi), "theta",
       ((1, 3),)),
    _f("I.6.2", "exp(-(theta/sigma)**2/2)/(sqrt(2*pi)*sigma)",
       lambda sigma, theta: exp(-(theta / sigma) ** 2 / 2) / (sqrt(2 * pi) * sigma), "sigma theta", ((1, 3),) * 2),
    _f("I.12.1", "mu*Nn", lambda mu, n: mu * n, "mu Nn"),
    _f("I.14.4", "1/2*k_spring*x**2", lambda k, x: k * x ** 2 / 2, "k_spring x"),
    _f("I.25.13", "q/C", lambda q, c: q / c, "q C"),
    _f("I.26.2", "arcsin(n*sin(theta2))", lambda n, theta2: arcsin(n * sin(theta2)), "n theta2",
       ((0, 1), (1, 5)),
       note="the range of n (0..1, so that the arcsine is defined) is recalled, not checked"),
    _f("II.11.28", "1+n*alpha/(1-(n*alpha/3))", lambda n, alpha: 1 + n * alpha / (1 - n * alpha / 3), "n alpha",
       ((0, 1), (0, 1))),
    _f("I.6.2b", "exp(-((theta-theta1)/sigma)**2/2)/(sqrt(2*pi)*sigma)",
       lambda sigma, theta, theta1: exp(-((theta - theta1) / sigma) ** 2 / 2) / (sqrt(2 * pi) * sigma),
       "sigma theta theta1", ((1, 3),) * 3),
    _f("I.10.7", "m_0/sqrt(1-v**2/c**2)", lambda m0, v, c: m0 / sqrt(1 - v ** 2 / c ** 2), "m_0 v c",
       ((1, 5), (1, 2), (3, 10))),
    _f("I.16.6", "(u+v)/(1+u*v/c**2)", lambda c, v, u: (u + v) / (1 + u * v / c ** 2), "c v u"),
    _f("I.18.12", "r*F*sin(theta)", lambda r, f, theta: r * f * sin(theta), "r F theta",
       ((1, 5), (1, 5), (0, 5))),
    _f("I.27.6", "1/(1/d1+n/d2)", lambda d1, d2, n: 1 / (1 / d1 + n / d2), "d1 d2 n"),
    _f("I.37.4", "I1+I2+2*sqrt(I1*I2)*cos(delta)", lambda i1, i2, delta: i1 + i2 + 2 * sqrt(i1 * i2) * cos(delta),
       "I1 I2 delta"),
    _f("I.39.22", "n*kb*T/V", lambda n, t, v, kb: n * kb * t / v, "n T V kb",
       note="the order of the variables in the table is recalled, not checked"),
    _f("I.47.23", "sqrt(gamma*pr/rho)", lambda gamma, pr, rho: sqrt(gamma * pr / rho), "gamma pr rho"),
    _f("III.15.14", "(h/(2*pi))**2/(2*E_n*d**2)", lambda h, en, d: (h / (2 * pi)) ** 2 / (2 * en * d ** 2),
       "h E_n d"),
    _f("III.17.37", "beta*(1+alpha*cos(theta))", lambda beta, alpha, theta: beta * (1 + alpha * cos(theta)),
       "beta alpha theta"),
    _f("I.8.14", "sqrt((x2-x1)**2+(y2-y1)**2)", lambda x1, x2, y1, y2: sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2),
       "x1 x2 y1 y2"),
    _f("I.13.4", "1/2*m*(v**2+u**2+w**2)", lambda m, v, u, w: m * (v ** 2 + u ** 2 + w ** 2) / 2, "m v u w"),
    _f("I.15.3x", "(x-u*t)/sqrt(1-u**2/c**2)", lambda x, u, c, t: (x - u * t) / sqrt(1 - u ** 2 / c ** 2),
       "x u c t", ((5, 10), (1, 2), (3, 20), (1, 2)),
       note="the ranges are recalled, not checked; u < c keeps the root real"),
    _f("I.29.16", "sqrt(x1**2+x2**2-2*x1*x2*cos(theta1-theta2))",
       lambda x1, x2, t1, t2: sqrt(x1 ** 2 + x2 ** 2 - 2 * x1 * x2 * cos(t1 - t2)), "x1 x2 theta1 theta2"),
    _f("II.6.11", "1/(4*pi*epsilon)*p_d*cos(theta)/r**2",
       lambda eps, pd, theta, r: pd * cos(theta) / (4 * pi * eps * r ** 2), "epsilon p_d theta r",
       ((1, 3),) * 4,
       note="the ranges (1..3) are recalled, not checked"),
    _f("II.38.3", "Y*A*x/d", lambda y, a, d, x: y * a * x / d, "Y A d x"),
    _f("III.4.33", "(h/(2*pi))*omega/(exp((h/(2*pi))*omega/(kb*T))-1)",
       lambda h, omega, t, kb: (h / (2 * pi)) * omega / (exp(h / (2 * pi) * omega / (kb * t)) - 1),
       "h omega T kb",
       note="the ranges (1..5) are recalled, not checked"),
    _f("I.12.11", "q*(Ef+B*v*sin(theta))", lambda q, ef, b, v, theta: q * (ef + b * v * sin(theta)),
       "q Ef B v theta"),
    _f("I.13.12", "G*m1*m2*(1/r2-1/r1)", lambda m1, m2, r1, r2, g: g * m1 * m2 * (1 / r2 - 1 / r1),
       "m1 m2 r1 r2 G"),
    _f("I.40.1", "n_0*exp(-m*g*x/(kb*T))", lambda n0, m, x, t, g, kb: n0 * exp(-m * g * x / (kb * t)),
       "n_0 m x T g kb",
       note="the ranges (1..5) are recalled, not checked"),
    _f("II.11.3", "q*Ef/(m*(omega_0**2-omega**2))",
       lambda q, ef, m, w0, w: q * ef / (m * (w0 ** 2 - w ** 2)), "q Ef m omega_0 omega",
       ((1, 3), (1, 3), (1, 3), (3, 5), (1, 2)),
       note="the ranges are recalled, not checked; omega_0 > omega keeps the denominator away from 0"),
    _f("II.35.21", "n_rho*mom*tanh(mom*B/(kb*T))",
       lambda n, mom, b, kb, t: n * mom * tanh(mom * b / (kb * t)), "n_rho mom B kb T",
       note="the ranges (1..5) are recalled, not checked"),
    _f("I.11.19", "x1*y1+x2*y2+x3*y3", lambda x1, x2, x3, y1, y2, y3: x1 * y1 + x2 * y2 + x3 * y3,
       "x1 x2 x3 y1 y2 y3"),
    _f("II.6.15a", "p_d/(4*pi*epsilon)*3*z/r**5*sqrt(x**2+y**2)",
       lambda eps, pd, r, x, y, z: pd / (4 * pi * eps) * 3 * z / r ** 5 * sqrt(x ** 2 + y ** 2),
       "epsilon p_d r x y z", ((1, 3),) * 6,
       note="the ranges (1..3) are recalled, not checked"),
    _f("I.9.18", "G*m1*m2/((x2-x1)**2+(y2-y1)**2+(z2-z1)**2)",
       lambda m1, m2, g, x1, x2, y1, y2, z1, z2: g * m1 * m2 / ((x2 - x1) ** 2 + (y2 - y1) ** 2 + (z2 - z1) ** 2),
       "m1 m2 G x1 x2 y1 y2 z1 z2", ((1, 2), (1, 2), (1, 2), (3, 4), (1, 2), (3, 4), (1, 2), (3, 4), (1, 2)),
       note="the ranges are recalled, not checked; they keep the two points apart"),
]

FORMULAS: dict[str, Formula] = {f.id: f for f in sorted(_LIST, key=lambda f: f.num_variables)}
"""The equations by id, in order of their number of variables (then as listed above)."""


def get_formula(id: str) -> Formula:
    """The formula with equation number ``id``.

    Raises
    ------
    NCGError
        If ``id`` is not in :data:`FORMULAS`; the message lists the ids.

    Examples
    --------
    >>> get_formula("II.6.15a").num_variables
    6
    """
    if id not in FORMULAS:
        raise NCGError(f"formula must be one of {', '.join(FORMULAS)}; got {id!r}")
    return FORMULAS[id]
