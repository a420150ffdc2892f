"""The summary fields that come from the per-connection columns, folded in a batch of rows at a time.

``RowTotals().add(columns)`` over a whole run's rows, or over its chunks one after another (a fleet
split over a Dask cluster: sim/execution/dask_run.py) and ``merge``d, gives the same fields: counts are
integers, float totals are exact sums rounded once at the end (the value ``math.fsum`` gives, whatever
the order and the split of the rows), and the values that a median or a peak needs are kept compactly
(8 bytes per detection time, 16 per zombie interval), never the rows.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence

from sim.facts.names import CLASS_COLUMN, REASON_COLUMNS

#: counts on the downstream leg besides the failure reasons: GOAWAY frames, Envoy's 503 answers
OTHER_FAILURE_FIELDS = ("goaways", "envoy_503s")
#: connect outcomes that are failures (kernel-lifecycle.md R43, R44; Envoy's connect_timeout)
CONNECT_FAILURES = ("connect_timeout", "connect_refused")
#: integer columns summed over the downstream leg, as summary fields of the same name
_DOWN_COUNTS = ("requests", "failed_requests", "requests_in_flight_at_end", *REASON_COLUMNS, *OTHER_FAILURE_FIELDS)
#: float totals: the summary field and the columns it sums (downstream leg only, or every leg)
_FLOAT_TOTALS = {"hang_s_total": (("hang_s",), True), "hang_s_open_total": (("hang_s_open",), True),
                 "zombie_s_total": (("client_zombie_s", "server_zombie_s"), False)}
ZOMBIE_SIDES = ("client_zombie_s", "server_zombie_s")
#: every finite double is an integer multiple of 2**-1074: totals are kept as exact integers of that unit
_SCALE = 1 << 1074


class ExactSum:
    """A sum of floats kept exactly (an integer in units of 2**-1074), so that sums of parts added
    together equal the sum of the whole; ``value`` rounds once, as ``math.fsum`` does. Infinities and
    NaN are added apart and win."""

    __slots__ = ("units", "special")

    def __init__(self) -> None:
        self.units = 0
        self.special = 0.0

    def add(self, x: float) -> None:
        if x == 0:
            return
        x = float(x)
        if math.isfinite(x):
            num, den = x.as_integer_ratio()
            self.units += num * (_SCALE // den)
        else:
            self.special += x

    def merge(self, other: ExactSum) -> None:
        self.units += other.units
        self.special += other.special

    @property
    def value(self) -> float:
        # int / int is correctly rounded, as math.fsum is
        return self.special if self.special else self.units / _SCALE


class RowTotals:
    """Totals of per-connection columns (DESIGN §3), mergeable over disjoint sets of rows; and those
    of each traffic class's rows (the ``class`` column), kept apart only once a second class shows
    up, so a fleet of one class folds its rows once."""

    def __init__(self) -> None:
        #: the one class every row so far is of (None before the first row), while ``by_class`` is None
        self.only_class: str | None = None
        #: each class's totals, once rows of two classes were seen
        self.by_class: dict[str, RowTotals] | None = None
        self.rows = 0
        self.keepalive_probes = 0
        self.connections = 0
        self.silent_drops = 0
        self.at_risk_gaps = 0
        self.connect_failures = 0
        self.down = dict.fromkeys(_DOWN_COUNTS, 0)
        self.sums = {k: ExactSum() for k in _FLOAT_TOTALS}
        self.outcomes: Counter = Counter()
        self.connect_outcomes: Counter = Counter()
        self.detects = array("d")
        #: per side, the zombie intervals' starts and ends (seconds)
        self.zombies = {side: (array("d"), array("d")) for side in ZOMBIE_SIDES}
        self.min_slack_s = math.inf

    def add(self, c: Mapping[str, Sequence]) -> RowTotals:
        """Fold in the rows of ``c`` (columns of one run or chunk); returns self."""
        n = len(c["conn_id"])
        if n and CLASS_COLUMN in c:
            self._add_classes(c)
        leg = c["leg"]
        down = [i for i in range(n) if leg[i] == "downstream"]
        self.rows += n
        self.connections += len(down)
        self.silent_drops += sum(1 for x in c["silent_drop"] if x)
        self.keepalive_probes += sum(c["keepalive_probes"])
        self.at_risk_gaps += sum(c["at_risk_gaps"])
        for f in _DOWN_COUNTS:
            col = c[f]
            self.down[f] += sum(col[i] for i in down)
        for name, (cols, down_only) in _FLOAT_TOTALS.items():
            acc = self.sums[name]
            for col_name in cols:
                col = c[col_name]
                for i in down if down_only else range(n):
                    acc.add(col[i])
        self.detects.extend(x for key in ("client_detect_s", "server_detect_s") for x in c[key] if not math.isnan(x))
        drop_at = c["drop_at_s"]
        for side in ZOMBIE_SIDES:
            starts, ends = self.zombies[side]
            col = c[side]
            for i in range(n):
                if col[i] > 0:
                    starts.append(drop_at[i])
                    ends.append(drop_at[i] + col[i])
        finite = [x for x in c["min_slack_s"] if not math.isinf(x) and not math.isnan(x)]
        if finite:
            self.min_slack_s = min(self.min_slack_s, min(finite))
        self.outcomes.update(c["outcome"])
        self.connect_outcomes.update(c["connect_outcome"])
        # every leg's connections: a failed upstream connect is a connect failure too
        self.connect_failures += sum(1 for o in c["connect_outcome"] if o in CONNECT_FAILURES)
        return self

    def _add_classes(self, c: Mapping[str, Sequence]) -> None:
        """Fold ``c``'s rows into their classes' totals (before they are folded into these)."""
        names = c[CLASS_COLUMN]
        kinds = set(names)
        if self.by_class is None:
            if len(kinds) == 1 and self.only_class in (None, names[0]):
                self.only_class = names[0]
                return
            self.by_class = self._split()
        for kind in sorted(kinds):
            rows = [i for i, name in enumerate(names) if name == kind]
            part = {k: [col[i] for i in rows] for k, col in c.items()}
            self.by_class.setdefault(kind, RowTotals()).add(part)

    def _split(self) -> dict[str, RowTotals]:
        """Each class's totals of the rows folded so far: all of ``only_class``, if any."""
        if self.only_class is None:
            return {}
        alone = RowTotals().merge(self)
        alone.only_class = self.only_class
        return {self.only_class: alone}

    def classes(self) -> dict[str, RowTotals]:
        """Each traffic class's totals (empty without a class column)."""
        if self.by_class is not None:
            return self.by_class
        return {} if self.only_class is None else {self.only_class: self}

    def merge(self, other: RowTotals) -> RowTotals:
        """Fold in the totals of other rows (disjoint from these); returns self."""
        if other.rows:
            if self.by_class is None and other.by_class is None and self.only_class in (None, other.only_class):
                self.only_class = other.only_class
            else:
                own = self.by_class if self.by_class is not None else self._split()
                for kind, t in (other.by_class if other.by_class is not None else other._split()).items():
                    own.setdefault(kind, RowTotals()).merge(t)
                self.by_class = own
        for f in ("rows", "keepalive_probes", "connections", "silent_drops", "at_risk_gaps", "connect_failures"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for f, v in other.down.items():
            self.down[f] += v
        for f, acc in other.sums.items():
            self.sums[f].merge(acc)
        self.outcomes.update(other.outcomes)
        self.connect_outcomes.update(other.connect_outcomes)
        self.detects.extend(other.detects)
        for side in ZOMBIE_SIDES:
            for mine, theirs in zip(self.zombies[side], other.zombies[side], strict=True):
                mine.extend(theirs)
        self.min_slack_s = min(self.min_slack_s, other.min_slack_s)
        return self

    def fields(self) -> dict:
        """The summary fields these rows give (sim.metrics.summary puts them in the summary's order)."""
        from sim.metrics.capacity import peak_overlap

        detects = self.detects
        return {
            "connections": self.connections,
            "silent_drops": self.silent_drops,
            "silent_drop_rate": self.silent_drops / self.rows if self.rows else 0.0,
            "requests": self.down["requests"],
            "failed_requests": self.down["failed_requests"],
            "failed_request_rate": (self.down["failed_requests"] / self.down["requests"]
                                    if self.down["requests"] else 0.0),
            "requests_in_flight_at_end": self.down["requests_in_flight_at_end"],
            **{name: acc.value for name, acc in self.sums.items()},
            "zombies_peak": max(peak_overlap(zip(*self.zombies[side], strict=True)) for side in ZOMBIE_SIDES),
            "detect_s_p50": median(detects),
            "detect_s_max": max(detects) if detects else math.nan,
            "min_slack_s": self.min_slack_s if not math.isinf(self.min_slack_s) else math.nan,
            "at_risk_gaps": self.at_risk_gaps,
            "keepalive_probes": self.keepalive_probes,
            **{f: self.down[f] for f in REASON_COLUMNS + OTHER_FAILURE_FIELDS},
            "outcomes": dict(sorted(self.outcomes.items())),
            "connect_failures": self.connect_failures,
            "connect_outcomes": dict(sorted(self.connect_outcomes.items())),
            "_detects": detects,
        }


def median(values: Sequence[float]) -> float:
    """The median (NaN when there is none)."""
    if not values:
        return math.nan
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
