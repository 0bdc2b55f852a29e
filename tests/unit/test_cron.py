"""`Cron`: parsing five-field lines and aliases, and the next / latest times, in time zones
and across daylight saving transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kflow.cron import Cron, CronError

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def times(line: str, start: datetime, count: int, zone: ZoneInfo | None = None
          ) -> list[datetime]:
    cron = Cron.parse(line)
    found = []
    for _ in range(count):
        following = cron.next_after(start, zone or UTC)
        assert following is not None
        found.append(following)
        start = following
    return found


@pytest.mark.parametrize(("line", "field", "values"), [
    ("* * * * *", "minutes", tuple(range(60))),
    ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
    ("5-20/5 * * * *", "minutes", (5, 10, 15, 20)),
    ("50/5 * * * *", "minutes", (50, 55)),
    ("1,2,10-12 * * * *", "minutes", (1, 2, 10, 11, 12)),
    ("0 9-17 * * *", "hours", tuple(range(9, 18))),
    ("0 0 * JAN,mar-May *", "months", frozenset({1, 3, 4, 5})),
    ("0 0 * * mon-fri", "weekdays", frozenset({1, 2, 3, 4, 5})),
    ("0 0 * * 7", "weekdays", frozenset({0})),
    ("0 0 * * 5-7", "weekdays", frozenset({5, 6, 0})),
    ("0 0 1,15 * *", "days", frozenset({1, 15})),
])
def test_fields_ranges_steps_lists_and_names(line: str, field: str, values: object) -> None:
    assert getattr(Cron.parse(line), field) == values


@pytest.mark.parametrize(("alias", "line"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
])
def test_aliases_mean_their_five_fields(alias: str, line: str) -> None:
    start = utc(2026, 3, 14, 15, 9)
    assert times(alias, start, 3) == times(line, start, 3)


def test_alias_times() -> None:
    start = utc(2026, 3, 14, 15, 9)
    assert times("@hourly", start, 2) == [utc(2026, 3, 14, 16), utc(2026, 3, 14, 17)]
    assert times("@daily", start, 1) == [utc(2026, 3, 15)]
    assert times("@weekly", start, 1) == [utc(2026, 3, 15)]          # a Sunday
    assert times("@monthly", start, 2) == [utc(2026, 4, 1), utc(2026, 5, 1)]
    assert times("@yearly", start, 1) == [utc(2027, 1, 1)]


@pytest.mark.parametrize(("line", "says"), [
    ("* * * *", "has 4 fields; write 5"),
    ("* * * * * *", "has 6 fields"),
    ("60 * * * *", "minute field: 60 is out of range 0-59"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
    ("* * * 13 *", "month field: 13 is out of range 1-12"),
    ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
    ("*/0 * * * *", "step '0'"),
    ("10-5 * * * *", "goes backwards"),
    ("0 0 L * *", "'L' is not a number"),
    ("0 0 * * MON#2", "'MON#2' is not a number"),
    ("0 0 * foo *", "or a name (jan, feb"),
    ("0 0 30 2 *", "never matches a date"),
    ("1,,2 * * * *", "empty item"),
    ("@reboot", "has 1 fields"),
])
def test_errors_say_what_and_how(line: str, says: str) -> None:
    with pytest.raises(CronError, match=None) as caught:
        Cron.parse(line)
    assert says in str(caught.value)


def test_next_is_strictly_after_and_latest_is_at_or_before() -> None:
    cron = Cron.parse("*/10 * * * *")
    assert cron.next_after(utc(2026, 1, 1, 0, 10)) == utc(2026, 1, 1, 0, 20)
    assert cron.next_after(utc(2026, 1, 1, 0, 10, 0, 1)) == utc(2026, 1, 1, 0, 20)
    assert cron.latest_at_or_before(utc(2026, 1, 1, 0, 10)) == utc(2026, 1, 1, 0, 10)
    assert cron.latest_at_or_before(utc(2026, 1, 1, 0, 19, 59)) == utc(2026, 1, 1, 0, 10)
    assert cron.next_after(utc(2026, 12, 31, 23, 55)) == utc(2027, 1, 1)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # The 13th, and every Friday (cron's OR rule).
    found = times("0 0 13 * 5", utc(2026, 2, 1), 5)
    assert found == [utc(2026, 2, 6), utc(2026, 2, 13), utc(2026, 2, 20), utc(2026, 2, 27),
                     utc(2026, 3, 6)]
    # Day-of-month "*": only the weekday restricts (AND).
    assert times("0 0 * * 5", utc(2026, 2, 1), 2) == [utc(2026, 2, 6), utc(2026, 2, 13)]


def test_leap_day_is_found_years_ahead_and_back() -> None:
    cron = Cron.parse("0 12 29 2 *")
    assert cron.next_after(utc(2025, 3, 1)) == utc(2028, 2, 29, 12)
    assert cron.latest_at_or_before(utc(2027, 1, 1)) == utc(2024, 2, 29, 12)


def test_time_zone_wall_clock() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    assert times("0 9 * * *", utc(2026, 1, 10), 1, PARIS) == [utc(2026, 1, 10, 8)]
    assert times("0 9 * * *", utc(2026, 7, 10), 1, PARIS) == [utc(2026, 7, 10, 7)]
    cron = Cron.parse("0 9 * * *")
    assert cron.latest_at_or_before(utc(2026, 7, 10, 6, 59), PARIS) == utc(2026, 7, 9, 7)


def test_spring_forward_skipped_time_runs_once_past_the_jump() -> None:
    # Europe/Paris 2026-03-29: 02:00 CET → 03:00 CEST; 02:30 does not exist.
    found = times("30 2 * * *", utc(2026, 3, 28, 12), 3, PARIS)
    assert [t.astimezone(PARIS).strftime("%d %H:%M %Z") for t in found] == [
        "29 03:30 CEST", "30 02:30 CEST", "31 02:30 CEST"]


def test_spring_forward_every_minute_never_runs_a_minute_twice() -> None:
    start = utc(2026, 3, 29, 0, 58)                    # 01:58 CET
    found = times("* * * * *", start, 5, PARIS)
    assert found == [start + timedelta(minutes=n) for n in range(1, 6)]
    # the skipped wall times collapse onto the real ones: strictly increasing
    found = times("*/30 * * * *", utc(2026, 3, 29, 0, 0), 4, PARIS)
    assert found == [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30),
                     utc(2026, 3, 29, 2, 0)]


def test_fall_back_fixed_hour_runs_once_at_the_first_occurrence() -> None:
    # America/New_York 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens twice.
    found = times("30 1 * * *", utc(2026, 10, 31, 12), 2, NEW_YORK)
    assert found == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]   # 01:30 EDT, EST


def test_fall_back_wildcard_hour_runs_in_both_occurrences() -> None:
    found = times("30 * * * *", utc(2026, 11, 1, 4, 0), 4, NEW_YORK)   # 00:00 EDT
    assert found == [utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5, 30),  # 00:30, 01:30 EDT
                     utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 7, 30)]  # 01:30, 02:30 EST
    cron = Cron.parse("30 * * * *")
    assert cron.latest_at_or_before(utc(2026, 11, 1, 6, 45), NEW_YORK) == utc(2026, 11, 1,
                                                                             6, 30)


def test_every_minute_walks_every_real_minute_across_both_transitions() -> None:
    cron = Cron.parse("* * * * *")
    for start in (utc(2026, 3, 29, 0, 30), utc(2026, 10, 25, 0, 30)):
        moment = start
        for _ in range(120):
            following = cron.next_after(moment, PARIS)
            assert following == moment.replace(second=0) + timedelta(minutes=1)
            moment = following
