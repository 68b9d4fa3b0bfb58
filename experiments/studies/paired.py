"""Two arms compared paired by training seed: seed s of arm A against seed s of arm B.

    c = compare({0: [...], 1: [...], 2: [...]}, {0: [...], 1: [...], 2: [...]},
                arms=("Bridge", "P-Match"), width=4, metric="accuracy")
    c["differences"], c["mean"], c["interval"], c["wins"], c["ties"], c["losses"], c["detectable"]

Each arm is {seed: per-problem values}, every list over the same problems in the same order. The
unit of replication is the training seed: a seed's number is its mean over the problems, and the
comparison is made on the per-seed differences A - B. The interval answers "would another training
seed give the same difference on these problems": the problems are shared by every seed, so the
sampling of the problem set is not in it; `se_problems` (a standard error over the problems of the
seed-averaged per-problem differences) is reported next to it for that.

Pure Python (math, statistics) so that anyone can check the numbers without the project's stack.
"""
import functools
import math
import statistics

LEVEL = 0.95
POWER = 0.8
# choice: a t interval over the per-seed differences, because with three seeds a bootstrap over
# seeds has only 10 distinct resamples and can never be wider than the three runs' range, while the
# t interval widens for few seeds as it must (its coverage exact if the differences are normal).
METHOD = "t interval over the per-seed differences (A - B), df = seeds - 1"
# choice: the detectable difference is the true mean difference a two-sided paired t test at the
# 5% level would detect with 80% power, given this many seeds and the observed SD of the per-seed
# differences, because a difference of the interval's half-width would be detected only half the time.
DETECTABLE = (f"the true difference a two-sided paired t test at level {1 - LEVEL:.2f} detects with "
              f"{POWER:.0%} power, with this many seeds and the observed SD of the per-seed differences")
TIES = "a tie is exact equality of the two per-seed means (for accuracy: equal counts of right answers)"


def compare(a, b, arms, width, metric="accuracy"):
    """The paired comparison of arms A and B on the seeds both have; see the module docstring.

    With fewer than 2 shared seeds the interval, SD and detectable difference are None: one
    difference says nothing about how much another seed would move it.
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"{arms[0]} and {arms[1]} share no training seed: nothing to pair")
    problems = {len(v) for s in seeds for v in (a[s], b[s])}
    if len(problems) != 1 or 0 in problems:
        raise ValueError(f"{arms[0]} vs {arms[1]}: every seed needs values for the same problems")
    mean_a = [statistics.fmean(a[s]) for s in seeds]
    mean_b = [statistics.fmean(b[s]) for s in seeds]
    diffs = [x - y for x, y in zip(mean_a, mean_b)]
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else None
    interval = None
    if sd is not None:
        half = t_quantile(0.5 + LEVEL / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
        interval = [mean - half, mean + half]
    return dict(arms=list(arms), width=width, metric=metric, seeds=seeds, means_a=mean_a, means_b=mean_b,
                differences=diffs, mean=mean, sd=sd, interval=interval, level=LEVEL, method=METHOD,
                wins=sum(x > y for x, y in zip(mean_a, mean_b)), ties=sum(x == y for x, y in zip(mean_a, mean_b)),
                losses=sum(x < y for x, y in zip(mean_a, mean_b)), tie_rule=TIES,
                detectable=None if sd is None else detectable(sd, len(diffs)),
                detectable_definition=DETECTABLE, se_problems=se_problems(a, b, seeds))


def se_problems(a, b, seeds):
    """Standard error over the problems of the per-problem differences averaged over the seeds."""
    per_problem = [statistics.fmean(a[s][p] - b[s][p] for s in seeds) for p in range(len(a[seeds[0]]))]
    return statistics.stdev(per_problem) / math.sqrt(len(per_problem)) if len(per_problem) > 1 else None


# -----------------------------------------------------------------------------
# Student t, in pure Python

def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if not 0 <= x <= 1:
        raise ValueError(f"betainc: x = {x} is outside [0, 1]")
    if x in (0, 1):
        return float(x)
    if x > (a + 1) / (a + b + 2):  # the continued fraction converges fast only below this point
        return 1 - betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return front * f


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1 - tail if t >= 0 else tail


def t_quantile(p, df):
    """The t with P(T <= t) = p, by bisection on t_cdf (monotone, so bisection cannot miss)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile: needs 0 < p < 1 and df > 0, got p = {p}, df = {df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def t_test_power(ncp, df, alpha):
    """Power of the two-sided t test at level alpha when the t statistic has noncentrality ncp.

    T = (Z + ncp) / (chi_df / sqrt(df)); integrating over the chi variable u (Simpson's rule, a
    smooth integrand) leaves normal tails: P(|T| > c) = E_u[Q(c u / sqrt(df) - ncp) + Q(c u / sqrt(df) + ncp)].
    """
    c = t_quantile(1 - alpha / 2, df)
    top, steps = math.sqrt(df) + 12, 2000
    h = top / steps
    log_norm = (1 - df / 2) * math.log(2) - math.lgamma(df / 2)  # the chi density's constant

    def integrand(u):
        if u == 0:  # the chi density at 0: u^(df - 1) is 1 for df = 1, else 0
            return math.exp(log_norm) * float(df == 1)  # and the two tails sum to 1 at z = 0
        z = c * u / math.sqrt(df)
        tails = math.erfc((z - ncp) / math.sqrt(2)) + math.erfc((z + ncp) / math.sqrt(2))
        return math.exp(log_norm + (df - 1) * math.log(u) - u * u / 2) * tails / 2

    total = integrand(0) + integrand(top) + sum((4 if i % 2 else 2) * integrand(i * h) for i in range(1, steps))
    return total * h / 3


@functools.lru_cache(maxsize=None)
def detectable_ncp(df, alpha, power):
    """The noncentrality at which the two-sided t test has this power, by bisection (power grows with it)."""
    lo, hi = 0.0, 1.0
    while t_test_power(hi, df, alpha) < power:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-9 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_test_power(mid, df, alpha) < power else (lo, mid)
    return (lo + hi) / 2


def detectable(sd, k, alpha=1 - LEVEL, power=POWER):
    """The smallest true mean difference a paired t test over k seeds detects with this power, if the
    per-seed differences have standard deviation sd (see DETECTABLE)."""
    return detectable_ncp(k - 1, alpha, power) * sd / math.sqrt(k)
