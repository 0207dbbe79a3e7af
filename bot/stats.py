"""Student t and F distributions, enough for the decision rule. Pure, stdlib only.

The bot may not depend on scipy (the GitHub Action that decides must stay light), and the
rule needs quantiles for small degrees of freedom: a σ estimated from 3 runs is uncertain,
and a t quantile is how that uncertainty raises the bar instead of being ignored.
"""

import math


def _beta_fraction(a, b, x):
    """Continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def incomplete_beta(a, b, x):
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def normal_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def t_cdf(t, df):
    """P(T <= t) for Student's t with `df` degrees of freedom (df = inf: the normal)."""
    if math.isinf(df):
        return normal_cdf(t)
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def f_sf(f, df1, df2):
    """P(F > f) for the F distribution with (df1, df2) degrees of freedom (df2 may be inf)."""
    if f <= 0:
        return 1.0
    if math.isinf(df2):  # df1·F is then χ² with df1 degrees of freedom
        return 1.0 - _gamma_p(df1 / 2.0, df1 * f / 2.0)
    return 1.0 - incomplete_beta(df1 / 2.0, df2 / 2.0, df1 * f / (df1 * f + df2))


def _gamma_p(a, x):
    """Regularized lower incomplete gamma P(a, x) by its series (x moderate here)."""
    if x <= 0:
        return 0.0
    term = total = 1.0 / a
    k = a
    for _ in range(1000):
        k += 1.0
        term *= x / k
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return min(1.0, total * math.exp(-x + a * math.log(x) - math.lgamma(a)))


def t_quantile(p, df):
    """The t value below which a fraction `p` (0.5 < p < 1) of Student's t(df) lies."""
    if math.isinf(df):
        low, high = 0.0, 40.0
        cdf = normal_cdf
    else:
        low, high = 0.0, 1e6
        cdf = lambda t: t_cdf(t, df)  # noqa: E731
    for _ in range(200):  # bisection: monotone, and precise enough in 200 halvings
        middle = (low + high) / 2.0
        if cdf(middle) < p:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0
