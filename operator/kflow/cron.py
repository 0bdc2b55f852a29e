"""Cron expressions and the times they name, in a time zone (pure).

Owns: `Cron` — parsing a five-field cron line (``minute hour day-of-month month
day-of-week``) or an alias (``@hourly``, ``@daily``/``@midnight``, ``@weekly``,
``@monthly``, ``@yearly``/``@annually``) — and the two questions a schedule asks:
`Cron.next_after` (the first time strictly after an instant) and `Cron.latest_at_or_before`
(the most recent time at or before an instant: the one missed time worth running).

Syntax, as in Vixie cron and Kubernetes CronJobs: ``*``, numbers, ranges ``a-b``, steps
``*/n``, ``a-b/n`` and ``a/n`` (from a to the field's end), lists ``a,b-c``, month names
``jan``-``dec`` and day names ``sun``-``sat`` (case-insensitive); day-of-week 0 and 7
are both Sunday. When both day-of-month and day-of-week are restricted (neither starts
with ``*``), a day matches if either does; otherwise both must (cron's rule). Anything
else (``L``, ``W``, ``#``, ``?``, seconds, years) is a `CronError` saying what to write.

Time zones (`zoneinfo`): the fields are wall-clock times in the zone. Across daylight
saving transitions:

- a wall time skipped when clocks go forward runs at the same offset past the jump
  (``30 2 * * *`` in Europe/Paris on the last Sunday of March runs at 03:30 CEST), and
  never twice when it coincides with another time of the schedule;
- a wall time repeated when clocks go back runs once, at its first occurrence, unless
  the hour field is ``*``: then it runs in both (an every-minute or every-hour schedule
  keeps running through the repeated hour).

Results are aware datetimes in UTC. Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

__all__ = ["ALIASES", "Cron", "CronError"]

ALIASES: Final = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS: Final = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
_DAYS: Final = {name: number for number, name in enumerate(
    ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NO_NAMES: Final[dict[str, int]] = {}
_FIELDS: Final[tuple[tuple[str, int, int, dict[str, int]], ...]] = (
    ("minute", 0, 59, _NO_NAMES), ("hour", 0, 23, _NO_NAMES),
    ("day-of-month", 1, 31, _NO_NAMES), ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS))
SEARCH_YEARS: Final = 10
"""How far ahead (or back) a time is looked for: February 29th needs up to 8 years. (A
weekday restricts only with day-of-month ``*``, and then every month has it.)"""
_WINDOW: Final = timedelta(hours=3)   # > any UTC offset change: see `Cron._search`


class CronError(ValueError):
    """A cron line that cannot be parsed, or that never matches a date."""


def _number(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isdigit():
            known = f", or a name ({', '.join(names)})" if names else ""
            raise CronError(f"{field} field: {text!r} is not a number from {low} to "
                            f"{high}{known}")
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field} field: {value} is out of range {low}-{high}")
    return value


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field} field: step {step_text!r} in {item!r} must be a "
                                "positive number")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start = _number(first, field, low, high, names)
            end = _number(last, field, low, high, names)
            if start > end:
                raise CronError(f"{field} field: range {body!r} goes backwards; write "
                                f"{end}-{start} or a list")
        elif body:
            start = _number(body, field, low, high, names)
            end = high if slash else start
        else:
            raise CronError(f"{field} field: empty item in {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed cron line (see the module docstring); build it with `Cron.parse`."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]          # 0 = Sunday … 6 = Saturday
    day_or: bool                      # both day fields restricted: either matches
    every_hour: bool                  # the hour field is "*": repeated hours run twice

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse a cron line; `CronError` (a ValueError) says what is wrong and how to
        write it."""
        line = " ".join(str(expression).split())
        fields = ALIASES.get(line.lower(), line).split()
        if len(fields) != 5:
            raise CronError(f"{expression!r} has {len(fields)} fields; write 5 "
                            "('minute hour day-of-month month day-of-week', e.g. "
                            "'0 6 * * 1-5') or one of " + ", ".join(ALIASES))
        parsed = [_field(text, name, low, high, names)
                  for text, (name, low, high, names) in zip(fields, _FIELDS, strict=True)]
        minutes, hours, days, months, weekdays = parsed
        cron = cls(expression=line, minutes=tuple(sorted(minutes)),
                   hours=tuple(sorted(hours)), days=days, months=months,
                   weekdays=frozenset(d % 7 for d in weekdays),
                   day_or=not fields[2].startswith("*") and not fields[4].startswith("*"),
                   every_hour=fields[1] == "*")
        if not cron.day_or and not any(day <= _month_days(2000, month) for month in months
                                       for day in days):
            raise CronError(f"{expression!r} never matches a date (day-of-month "
                            f"{fields[2]} never occurs in month {fields[3]})")
        return cron

    # -- matching ------------------------------------------------------------------------

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        return in_month or in_week if self.day_or else in_month and in_week

    def _wall_times(self, start: datetime, forward: bool) -> Iterator[datetime]:
        """Matching naive wall-clock times from `start` (inclusive) on, forward or back,
        for at most `SEARCH_YEARS`."""
        step = timedelta(days=1 if forward else -1)
        day = start.date()
        hours = self.hours if forward else self.hours[::-1]
        minutes = self.minutes if forward else self.minutes[::-1]
        for _ in range(SEARCH_YEARS * 366 + 1):
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        wall = datetime.combine(day, time(hour, minute))
                        if wall >= start if forward else wall <= start:
                            yield wall
            day += step

    def _instants(self, wall: datetime, zone: tzinfo) -> list[datetime]:
        """The UTC instants of wall time `wall` in `zone` (see the module docstring)."""
        first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        repeated = all(t.astimezone(zone).replace(tzinfo=None) == wall
                       for t in (first, second))
        if not repeated:                  # skipped: fold 0 reads it past the jump
            return [first]
        return sorted({first, second}) if self.every_hour else [min(first, second)]

    def _search(self, instant: datetime, zone: tzinfo, forward: bool) -> datetime | None:
        """The nearest matching instant after (`forward`) or at-or-before `instant`.

        Wall times map to instants monotonically except around a UTC offset change, so
        the scan starts `_WINDOW` on the other side and keeps going `_WINDOW` past the
        first hit, then takes the nearest.
        """
        instant = instant.astimezone(UTC)
        wall = instant.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        start = wall - _WINDOW if forward else wall + _WINDOW
        best: datetime | None = None
        limit: datetime | None = None
        for candidate in self._wall_times(start, forward):
            if limit is not None and (candidate > limit if forward else candidate < limit):
                break
            for moment in self._instants(candidate, zone):
                if (moment > instant) if forward else (moment <= instant):
                    if best is None or (moment < best if forward else moment > best):
                        best = moment
                    if limit is None:
                        limit = candidate + _WINDOW if forward else candidate - _WINDOW
        return best

    def next_after(self, instant: datetime, zone: tzinfo = UTC) -> datetime | None:
        """The first time of the schedule strictly after `instant` (aware), in UTC; None
        if there is none within `SEARCH_YEARS`."""
        return self._search(instant, zone, forward=True)

    def latest_at_or_before(self, instant: datetime, zone: tzinfo = UTC) -> datetime | None:
        """The most recent time of the schedule at or before `instant` (aware), in UTC;
        None if there is none within `SEARCH_YEARS`."""
        return self._search(instant, zone, forward=False)


def _month_days(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day
