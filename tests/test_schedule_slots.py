"""Cron slots: time zones, daylight-saving changes and the catch-up policies. Pure: no broker."""
from datetime import datetime

import pytest

from hive_streams.schedules.cron import MAX_CATCH_UP, CronError, check, next_slot, plan, slots_after, slots_before, to_iso

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def local(slots, zone=BERLIN):
    return [to_iso(s, zone) for s in slots]


def test_daily_slot_in_the_skipped_hour_fires_the_gaps_length_later():
    got = slots_after("30 2 * * *", BERLIN, ms("2026-03-27T12:00:00+00:00"), ms("2026-03-31T00:00:00+00:00"), 10)
    assert local(got) == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_slots_through_the_skipped_hour_are_strictly_increasing_and_not_repeated():
    got = slots_after("*/30 * * * *", BERLIN, ms("2026-03-29T00:10:00+00:00"), ms("2026-03-29T02:10:00+00:00"), 10)
    assert local(got) == ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00",
                          "2026-03-29T04:00:00+02:00"]
    assert got == sorted(set(got))


def test_a_repeated_wall_time_fires_once_at_its_first_occurrence():
    got = slots_after("30 1 * * *", BERLIN, ms("2026-10-24T12:00:00+00:00"), ms("2026-10-27T00:00:00+00:00"), 10)
    assert local(got) == ["2026-10-25T01:30:00+02:00", "2026-10-26T01:30:00+01:00"]
    hourly = slots_after("0 * * * *", NEW_YORK, ms("2026-11-01T04:30:00+00:00"), ms("2026-11-01T08:30:00+00:00"), 10)
    assert local(hourly, NEW_YORK) == ["2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00",
                                       "2026-11-01T03:00:00-05:00"]


def test_starting_inside_the_repeated_hour_resumes_after_it():
    second_half = ms("2026-10-25T01:10:00+00:00")  # 02:10 CET, the second 02:10 of the night
    assert local(slots_after("*/20 * * * *", BERLIN, second_half, second_half + 7200_000, 3)) == [
        "2026-10-25T03:00:00+01:00", "2026-10-25T03:20:00+01:00", "2026-10-25T03:40:00+01:00"]


def test_backward_and_forward_agree_across_both_changes():
    for zone, start, end in ((BERLIN, "2026-03-28T20:00:00+00:00", "2026-03-29T06:00:00+00:00"),
                             (BERLIN, "2026-10-24T20:00:00+00:00", "2026-10-25T06:00:00+00:00"),
                             (NEW_YORK, "2026-03-08T03:00:00+00:00", "2026-03-08T12:00:00+00:00")):
        forward = slots_after("*/15 * * * *", zone, ms(start), ms(end), 1000)
        assert list(reversed(slots_before("*/15 * * * *", zone, ms(end), ms(start), 1000))) == forward


def test_seconds_field_and_the_slot_at_now_itself():
    assert slots_after("* * * * * */5", "UTC", 0, 20_000, 10) == [5_000, 10_000, 15_000, 20_000]
    assert slots_before("* * * * * */5", "UTC", 20_000, 5_000, 10) == [20_000, 15_000, 10_000]
    assert next_slot("* * * * * */5", "UTC", 5_000) == 10_000


def test_bad_expression_and_zone_name_their_field():
    with pytest.raises(CronError) as bad:
        check("every day", "UTC")
    assert bad.value.field == "cron"
    with pytest.raises(CronError) as zone:
        check("* * * * *", "Mars/Olympus")
    assert zone.value.field == "timezone"
    check("0 9 * * mon-fri", NEW_YORK)


def test_a_slot_within_the_grace_runs_whatever_the_policy():
    for policy in ("skip", "once", "all"):
        assert plan("* * * * * *", "UTC", policy, 10_000, 12_000, 5_000).fire == (11_000, 12_000)


def test_skip_runs_no_missed_slot():
    chosen = plan("* * * * * *", "UTC", "skip", 0, 10_000, 2_000)
    assert chosen.fire == (8_000, 9_000, 10_000)
    assert chosen.skip == tuple(range(1_000, 8_000, 1_000)) and chosen.through == 10_000


def test_once_runs_the_latest_missed_slot_only():
    chosen = plan("* * * * * *", "UTC", "once", 0, 10_000, 2_000)
    assert chosen.fire == (7_000, 8_000, 9_000, 10_000)
    assert chosen.skip == tuple(range(1_000, 7_000, 1_000))


def test_all_runs_every_missed_slot():
    chosen = plan("* * * * * *", "UTC", "all", 0, 10_000, 0)
    assert chosen.fire == tuple(range(1_000, 11_000, 1_000)) and chosen.skip == ()


def test_all_runs_at_most_the_cap_the_most_recent_ones():
    now = 1_000_000
    chosen = plan("* * * * * *", "UTC", "all", 0, now, 0)
    assert len(chosen.fire) == MAX_CATCH_UP
    assert chosen.fire[0] == now - (MAX_CATCH_UP - 1) * 1000 and chosen.through == now


def test_nothing_due_plans_nothing():
    assert plan("0 9 * * *", BERLIN, "all", ms("2026-06-01T08:00:00+00:00"),
                ms("2026-06-01T08:30:00+00:00"), 0).empty


def test_a_policy_that_does_not_exist_names_its_field():
    with pytest.raises(CronError) as bad:
        plan("* * * * *", "UTC", "sometimes", 0, 1, 0)
    assert bad.value.field == "catchup"
