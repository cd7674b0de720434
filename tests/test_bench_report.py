"""The benchmark report shows a percentile only where its sample supports it, and names the max otherwise."""
from __future__ import annotations

from bench.common import percentiles, samples_for, summary
from bench.replay import interleaved
from bench.report import connector_section, hop_columns, latency_section, latency_verdict, replay_section


def latency(samples_per_run: int, p50: float, top: float, p99: float | None = None) -> dict:
    run = {"p50": p50, "max": top, **({"p99": p99} if p99 is not None else {})}
    out = {"command": "x", "rate": 1.0, "tasks_per_run": samples_per_run,
           "runs": [{"completed": run, "first_frame": run}]}
    for frame in ("completed", "first_frame"):
        out.update({f"{frame}_{q}": summary([v]) for q, v in run.items()})
    return out


def test_a_percentile_needs_ten_samples_beyond_it():
    assert [samples_for(q) for q in (50, 90, 99, 99.9)] == [20, 100, 1000, 10000]
    assert set(percentiles(list(range(150)))) == {"p50", "p90", "max", "n"}
    assert set(percentiles(list(range(10_000)))) == {"p50", "p90", "p99", "p99.9", "max", "n"}


def test_a_p99_target_is_judged_on_what_the_sample_supports():
    assert latency_verdict(latency(1000, 40, 300, p99=90), 100) == ["p99 90 ms", "yes"]
    few = latency_verdict(latency(150, 40, 90), 100)
    assert few[0].startswith("max 90 ms, so p99 is under it") and few[1] == "yes"
    assert latency_verdict(latency(150, 240, 677), 100)[1] == "**no**"
    assert latency_verdict(latency(150, 40, 300), 100)[1] == "not judged"
    assert latency_verdict(latency(150, 240, 677, p99=632), 100)[0].startswith("p50 240 ms")  # a p99 of 150 is ignored


def test_the_latency_table_has_no_column_its_sample_cannot_support():
    table = "\n".join(latency_section(latency(150, 40, 300, p99=290)))
    assert "| ms | p50 | max |" in table and "p99 |" not in table


def test_hop_columns_follow_the_sample():
    old = {"a -> b": {"by": "x", "p50_ms": 5, "p99_ms": 9}}
    assert hop_columns(old, 200) == ["p50_ms"]
    assert hop_columns({"a -> b": {"by": "x", "n": 10, "max_ms": 9}}, 10) == ["max_ms"]
    assert hop_columns({"a -> b": {"by": "x", "n": 1000, "p50_ms": 5, "p99_ms": 8, "max_ms": 9}}, 1000) == \
        ["p50_ms", "p99_ms", "max_ms"]


def test_the_run_below_saturation_is_shown_beside_the_targets_rate_and_not_judged():
    lat = latency(1000, 4000, 20000, p99=14000)
    lat["low"] = {**latency(1000, 90, 260, p99=190), "rate": 10.0}
    text = "\n".join(latency_section(lat))
    main, low = text.split("### Below saturation: the same at 10 tasks/s")
    assert "| submit → TaskCompleted frame | 4,000 (1 run) | 14,000 (1 run) |" in main
    assert "| submit → TaskCompleted frame | 90 (1 run) | 190 (1 run) | 260 (1 run) |" in low
    assert latency_verdict(lat, 100)[1] == "**no**"  # the target is judged on the main run only


def test_the_producer_clients_runs_are_shown_and_judged_on_the_task_completed_in_the_log():
    lat = latency(1000, 4000, 20000, p99=14000)
    run = {"acknowledged": {"p50": 9, "p99": 50, "max": 120},
           "completed_in_log": {"p50": 60, "p99": 95, "max": 130}}
    lat["producer"] = {"rate": 81.0, "tasks_per_run": 1000, "runs": [run],
                       **{f"{m}_{q}": summary([v]) for m, qs in run.items() for q, v in qs.items()}}
    text = "\n".join(latency_section(lat))
    main, by_producer = text.split("### Submitted with the producer client at the same rate")
    assert "acknowledged" not in main
    assert "| submit → acknowledged by the broker | 9 (1 run) | 50 (1 run) | 120 (1 run) |" in by_producer
    assert "| submit → TaskCompleted in the log | 60 (1 run) | 95 (1 run) | 130 (1 run) |" in by_producer
    assert latency_verdict(lat["producer"], 100, "completed_in_log") == ["p99 95 ms", "yes"]
    assert latency_verdict(lat, 100)[1] == "**no**"


def test_the_connectors_section_shows_its_cost_per_record_and_per_task():
    runs = [{"records_per_s": 2500.0, "connector_cpu_us_per_record": 250.0, "postgresql_cpu_us_per_record": 130.0,
             "wall_us_per_record": 400.0, "cpu_ms_per_task": 1.9}]
    k = {"command": "python -m bench connector", "tasks_per_run": 2000, "batch": 100, "partitions": 4, "runs": runs,
         **{key: summary([runs[0][key]]) for key in runs[0]}}
    text = "\n".join(connector_section(k))
    assert "| connector CPU per record (µs) | 250 (1 run) |" in text
    assert "| PostgreSQL CPU per record (µs) | 130 (1 run) |" in text
    assert "| connector and PostgreSQL CPU per task (ms) | 1.90 (1 run) |" in text


def test_the_replay_ratio_is_the_median_of_each_rounds_own_ratio():
    # round 1 ran on a quiet machine, round 2 at half speed, round 3 at a third: the ratio of medians would be
    # 300 / 600 = 0.50, each round's own is 0.75, 0.60, 0.70
    rp = {"command": "python -m bench replay", "events": 10, "bytes_per_event": 50.0,
          **{k: summary(v) for k, v in {"fastavro_decode": [1200.0, 600.0, 400.0], "codec_decode": [900.0, 450.0, 300.0],
                                        "evolve_only": [5000.0] * 3, "fold": [900.0, 360.0, 280.0],
                                        "fold_from_kafka": [250.0] * 3}.items()},
          "fold_over_fastavro": summary([0.75, 0.60, 0.70])}
    text = "\n".join(replay_section(rp))
    assert "Fold ÷ fastavro decode-only (target ≥ 0.6): 0.70 wall clock, the median of 3 rounds' ratios (0.60–0.75)" in text


def test_the_replay_rounds_time_each_function_once_a_round_in_turn():
    import bench.replay as replay
    calls = []
    saved = replay.ROUND
    def timing(name):
        def fn(records):
            calls.append(name)
            sum(range(20_000))  # some CPU time, so a rate has a denominator
        return fn
    replay.ROUND = tuple((name, timing(name)) for name, _ in saved)
    try:
        rates, cpu_rates = interleaved([b"x"] * 4, 2)
    finally:
        replay.ROUND = saved
    assert calls == ["fastavro_decode", "codec_decode", "fold"] * 2
    assert {k: len(v) for k, v in rates.items()} == {"fastavro_decode": 2, "codec_decode": 2, "fold": 2}


def test_a_latency_section_not_at_half_of_section_ones_rate_says_so():
    from bench.report import rate_drift
    tasks = {"hive_http": {"tasks_per_s": summary([600.0])}, "hive_producer": {"tasks_per_s": summary([720.0])},
             "celery": {"tasks_per_s": summary([650.0])}}
    assert rate_drift({"tasks": tasks, "latency": {"rate": 360.0}}) == []
    warned = "\n".join(rate_drift({"tasks": tasks, "latency": {"rate": 400.0}}))
    assert "this section ran at 400.00 tasks/s" in warned
    assert "half of section 1's best median (hive_producer, 720.0 tasks/s) is 360.00 (1.11× that)" in warned


def test_the_warm_up_runs_in_bursts_and_the_report_shows_the_brokers_cpu_of_each():
    from bench.report import _warming
    from bench.tasks import bursts
    assert bursts(80_000, 10_000) == [10_000] * 8
    assert bursts(25_000, 10_000) == [10_000, 10_000, 5_000]
    assert bursts(20, 10_000) == [20]
    line = _warming([1.034, 0.582, 0.3])
    assert line == " The broker's CPU a task in each burst of the warm-up, in ms: 1.03, 0.58, 0.30."
    assert _warming([]) == "" and _warming(None) == ""


def test_a_tasks_spans_are_measured_per_task_from_its_own_records():
    from collections import namedtuple

    from bench.tasks import hop_latencies
    record = namedtuple("Record", "key value headers timestamp")

    def task(key: bytes, **at: int) -> dict:
        return {kind: record(key, b"", [("ce_type", f"hive.{kind}".encode())], ms) for kind, ms in at.items()}

    # their records cross: pairing TaskSubmitted with TaskAssigned in any other way than task by task (by rank, by
    # the nearest record of another task, the latest of one type against the earliest of the other) gives 80-110
    tasks = [task(b"t:1", SubmitTask=0, TaskSubmitted=0, TaskAssigned=100, TaskCompleted=105),
             task(b"t:2", SubmitTask=3, TaskSubmitted=5, TaskAssigned=15, TaskCompleted=40),
             task(b"t:3", SubmitTask=18, TaskSubmitted=20, TaskAssigned=110, TaskCompleted=115)]
    hops = hop_latencies({"task.commands": [t["SubmitTask"] for t in tasks],
                          "task.events": [r for t in tasks for k, r in t.items() if k != "SubmitTask"]})
    assert hops["TaskSubmitted -> TaskAssigned"]["max_ms"] == 100
    assert hops["TaskAssigned -> TaskCompleted"]["max_ms"] == 25
    assert hops["TaskSubmitted -> TaskAssigned"]["by"].startswith("span")
    assert hops["SubmitTask -> TaskCompleted"]["max_ms"] == 105
