"""REPORT.md and a PNG chart from results.json."""
from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .common import PROCESSES, samples_for, summary, supported, sustained_rate

CHART = "bench.png"
HIVE_VARIANTS = (("hive_http", "HTTP batches"), ("hive_producer", "Kafka producer client"))


def fmt(s: dict, digits: int = 0) -> str:
    """median (min–max, spread) of a summary."""
    if s["runs"] == 1:
        return f"{s['median']:,.{digits}f} (1 run)"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f}, spread {s['spread_pct']:.0f}%)"


def _warming(per_task: list[float] | None) -> str:
    """The broker's CPU a task in each burst of the warm-up: whether it had settled before the first run."""
    if not per_task:
        return ""
    return (" The broker's CPU a task in each burst of the warm-up, in ms: "
            + ", ".join(f"{v:.2f}" for v in per_task) + ".")


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(str, r)) + " |" for r in rows)]


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def summary_rows(r: dict) -> list[list]:
    rows = []
    if "tasks" in r:
        t = r["tasks"]
        c = t["celery"]["tasks_per_s"]["median"]
        for key, label in HIVE_VARIANTS:
            h = t[key]["tasks_per_s"]["median"]
            rows.append([f"1. tasks/s end to end, {label}", "≥ Celery with Redis",
                         f"{h:,.1f} vs Celery {c:,.1f} ({h / c:.2f}×)", _met(h >= c)])
        cpu = {key: t[key]["system_cpu_ms_per_task"]["median"] for key in ("hive_http", "hive_producer", "celery")}
        servers = t["setup"].get("servers_measured", [])
        counted = f"with the {' and '.join(servers)} " if servers else "(no broker or PostgreSQL CPU: not ours to read) "
        rows.append([f"1. CPU per task, every process of the system {counted}(hive-streams) or Redis (Celery), "
                     "bench client excluded", "(reported)",
                     f"{cpu['hive_http']:,.1f} ms (HTTP batches), {cpu['hive_producer']:,.1f} ms (producer) vs Celery "
                     f"{cpu['celery']:,.1f} ms", _met(None)])
    if "pipeline" in r:
        ratio = r["pipeline"]["ratio"]["median"]
        rows.append(["2. pipeline vs raw aiokafka + decode", "≥ 0.5", f"{ratio:.4f}", _met(ratio >= 0.5)])
    if "latency" in r:
        lat = r["latency"]
        rows.append(["3. p99 submit → TaskCompleted SSE frame at half the sustained rate (one `POST` and one feed a task)",
                     "< 100 ms", *latency_verdict(lat, lat.get("target_ms", 100))])
        if "producer" in lat:
            rows.append(["3. p99 submit → TaskCompleted in the log at the same rate (producer client, one `submit` a task)",
                         "< 100 ms", *latency_verdict(lat["producer"], lat.get("target_ms", 100), "completed_in_log")])
    if "replay" in r:
        rp = r["replay"]
        fold, fastavro, ratio = rp["fold"]["median"], rp["fastavro_decode"]["median"], replay_ratio(rp)
        rows.append(["4. replay fold ÷ fastavro decode-only on the same records, wall clock", "≥ 0.6",
                     f"{ratio:.2f}{ROUNDS_NOTE if 'fold_over_fastavro' in rp else ''}; medians "
                     f"{fold:,.0f} vs {fastavro:,.0f} events/s", _met(ratio >= 0.6)])
    if "memory" in r:
        m = r["memory"]
        rows.append([f"5. memory at {m['tasks']:,} tasks", "(reported)",
                     f"worker {m['worker_mib']['median']:,.0f} MiB, API {m['api_mib']['median']:,.0f} MiB", _met(None)])
    if "restart" in r:
        rows.append(restart_row(r["restart"]))
    return rows


def restart_row(rs: dict) -> list:
    warm, cold = rs["warm_ready_s"]["median"], rs["cold"]["ready_s"]
    matched = [w.get("matcher_caught_up_s") for w in rs["warm"]]
    matcher = statistics.median(matched) if None not in matched else None
    row = ["6. worker restart: process start → every partition owned and the matcher caught up, from snapshots",
           f"< {rs['target_s']:g} s at {rs['target_events']:,} events",
           f"{warm:,.1f} s owned, matcher {'—' if matcher is None else f'{matcher:,.1f} s'} (first start, no "
           f"snapshot: {cold:,.1f} s) at {rs['events']:,} events"]
    if rs["events"] >= rs["target_events"]:
        return row + [_met(matcher is not None and max(warm, matcher) < rs["target_s"])]
    return row[:2] + [row[2] + " (the target's size needs `--full`)", "not judged"]


def quantile(lat: dict, frame: str, q: str) -> dict | None:
    """The summary over runs of a latency quantile, only if each run's sample supports it."""
    if q == "max":
        return lat.get(f"{frame}_max") or (summary([run[frame]["max"] for run in lat["runs"]])
                                           if frame in lat["runs"][0] else None)
    return lat.get(f"{frame}_{q}") if supported(float(q[1:]), lat["tasks_per_run"]) else None


def latency_verdict(lat: dict, target_ms: float, frame: str = "completed") -> list[str]:
    """[result, met] for a p99 target, judged on p99 only when the sample supports it; otherwise on what it
    does support: a max under the target bounds p99 from above, a p50 over it bounds p99 from below."""
    n, p99 = lat["tasks_per_run"], quantile(lat, frame, "p99")
    if p99:
        return [f"p99 {p99['median']:,.0f} ms", _met(p99["median"] < target_ms)]
    top, p50 = quantile(lat, frame, "max")["median"], (quantile(lat, frame, "p50") or {}).get("median")
    few = f"{n} samples a run are too few for a p99 (it needs {samples_for(99):,})"
    if top < target_ms:
        return [f"max {top:,.0f} ms, so p99 is under it; {few}", _met(True)]
    if p50 is not None and p50 >= target_ms:
        return [f"p50 {p50:,.0f} ms, so p99 is over it (max {top:,.0f} ms); {few}", _met(False)]
    return [f"max {top:,.0f} ms; {few}", "not judged"]


def hop_columns(hops: dict, n: int) -> list[str]:
    """The hop figures every hop has and its sample supports (n: tasks a run, where a hop does not say)."""
    cols = [f"p{q:g}_ms" for q in (50, 99)
            if all(f"p{q:g}_ms" in v and supported(q, v.get("n", n)) for v in hops.values())]
    return cols + (["max_ms"] if all("max_ms" in v for v in hops.values()) else [])


def tasks_section(t: dict) -> list[str]:
    c, s = t["celery"], t["setup"]
    systems = [("hive-streams, HTTP batches", t["hive_http"]), ("hive-streams, producer client", t["hive_producer"]),
               ("Celery + Redis", c)]
    lines = [f"Command: `{t['command']}`", "",
             f"{s['processes']} executor processes (hive-streams, {s['hive_slots_per_executor']} slots each) vs "
             f"{s['processes']} Celery prefork worker processes; {s['tasks_per_run']:,} tasks a run; {s['node']}. "
             f"Submission: hive-streams in two kinds of run, {s['hive_submit']['http']}, and "
             f"{s['hive_submit']['producer']}; Celery {s['celery_submit']}. The clock runs from the first submit to the "
             "last completion (hive-streams: the last `TaskCompleted` event, read as committed; Celery: the last "
             "result). Each run has a fresh stack (topics, database, processes) or a fresh redis-server and Celery "
             "worker, a warm-up of a few tasks first, and its clients connected before the clock starts; the three "
             "kinds of run alternate."
             + (f" Before the first run, {s['warm_up_tasks']:,} tasks went through a fabric (producer client), not "
                "measured: a broker just started spends 2–3 times the CPU a task until its JVM has compiled its hot "
                "code (each Celery run has its own new redis-server: nothing of it is shared to warm)."
                + _warming(s.get("warm_up_broker_ms_per_task"))
                if s.get("warm_up_tasks") else ""), ""]
    lines += _table(["system", "tasks/s: median (min–max, spread)", "CPU ms per task (system, bench client excluded)",
                     "runs"],
                    [[name, fmt(v["tasks_per_s"], 1), fmt(v["system_cpu_ms_per_task"], 1), v["tasks_per_s"]["runs"]]
                     for name, v in systems])
    for key, label in HIVE_VARIANTS:
        h = t[key]
        lines += ["", f"hive-streams ({label}) writes {fmt(h['events_per_task'], 1)} events per task (task and agent "
                  f"events, heartbeats included), so {fmt(h['events_per_s'], 0)} events/s; plus "
                  f"{h['runs'][0]['commands_per_task']:.1f} commands per task."]
    lines += ["", f"Celery issues {c['runs'][0]['redis_commands_per_task']:.1f} Redis commands per task.", "",
              "Records per task by type (first run with HTTP batches):", ""]
    runs = t["hive_http"]["runs"]
    by_type = runs[0]["by_type"]
    lines += _table(["topic", "records per task"],
                    [[topic, ", ".join(f"{k} {v / runs[0]['tasks']:.2f}" for k, v in sorted(counts.items()))]
                     for topic, counts in by_type.items()])
    lines += cpu_table(t)
    lines += ["", "Where a hive-streams task's time goes: each hop from the record that causes it to the record it "
              "produces, from the records' timestamps (first run with HTTP batches):", ""]
    hops = runs[0]["hops"]
    cols = hop_columns(hops, s["tasks_per_run"])
    lines += _table(["hop", "done by", *(c.replace("_ms", " ms") for c in cols)],
                    [[hop, v["by"], *(f"{v[c]:.0f}" for c in cols)] for hop, v in hops.items()])
    if "p99_ms" not in cols:
        lines += ["", f"No p99: {s['tasks_per_run']} tasks a run are too few for one (it needs {samples_for(99):,})"
                  + ("." if "max_ms" in cols else "; this run did not record the max.")]
    return lines


SERVERS = ("kafka broker", "postgresql")


def cpu_table(t: dict) -> list[str]:
    """CPU per task by process, medians over the runs, with the shared servers' background next to them."""
    kinds = [("hive-streams, HTTP batches", t["hive_http"]["runs"]), ("hive-streams, producer client",
                                                                       t["hive_producer"]["runs"]),
             ("Celery + Redis", t["celery"]["runs"])]
    procs = []
    for _, runs in kinds:
        procs += [p for p in runs[0]["cpu_ms_per_task"] if p not in procs and p != "bench client"]
    procs = [p for p in procs if p not in SERVERS] + [p for p in SERVERS if p in procs] + ["bench client"]
    med = lambda runs, p: statistics.median(r["cpu_ms_per_task"][p] for r in runs) if p in runs[0]["cpu_ms_per_task"] else None
    rows = [[name, *(f"{v:.2f}" if (v := med(runs, p)) is not None else "" for p in procs)] for name, runs in kinds]
    lines = ["", "CPU time per task by process (ms, medians over the runs): utime + stime from /proc over the span "
             "from the first submit to the last completion. `kafka broker` is the broker's JVM; `postgresql` is every "
             "process of the PostgreSQL server the bench uses (the postmaster, its live children, and the children "
             "it reaped within the span).", ""]
    lines += _table(["system", *procs], rows)
    background = [r.get("background_cpu_ms_per_s") for r in t["celery"]["runs"]]
    if background and all(background) and any(background[0].values()):
        hive_s = statistics.median(r["cpu_window_s"] for r in t["hive_http"]["runs"])
        n = t["setup"]["tasks_per_run"]
        per_s = {k: statistics.median(b[k] for b in background) for k in background[0]}
        lines += ["", "The broker and PostgreSQL are shared with other sessions on this machine, so their columns "
                  "include other work. Celery uses neither: over the Celery runs they spent "
                  + ", ".join(f"{k} {v:,.0f} ms per second" for k, v in per_s.items())
                  + f" (medians), which over a hive-streams run with HTTP batches ({hive_s:.1f} s for {n:,} tasks) "
                  "would be " + ", ".join(f"{k} {v * hive_s / n:.2f} ms per task" for k, v in per_s.items())
                  + " of background."]
    return lines


def pipeline_section(p: dict) -> list[str]:
    lines = [f"Command: `{p['command']}`", "",
             "The worker starts on fresh topics (4 partitions a family) and is left until it owns every command "
             f"partition and its matcher has caught up; then {p['commands_per_run']:,} `SubmitTask` commands appear at "
             "once (written in one transaction). The pipeline's clock runs from that transaction's commit to the "
             "timestamp of the last event the commands caused: neither start-up nor the writing of the commands "
             "overlaps it. "
             "Each command becomes one event (TaskSubmitted, queued). "
             "The limit is a plain aiokafka consumer reading the same command records from the beginning and only "
             "decoding them, with the project's codec (Avro and domain objects) and with bare fastavro; it reads the topic "
             f"from the beginning as many times as it takes to decode {p.get('limit_records', 20_000):,} records, clock "
             "started at its first batch.", ""]
    lines += _table(["", "records/s: median (min–max, spread)"],
                    [["pipeline: commands decided", fmt(p["pipeline_commands_per_s"], 1)],
                     ["pipeline: events written", fmt(p["pipeline_events_per_s"], 1)],
                     ["limit: aiokafka + project codec", fmt(p["raw_codec_per_s"])],
                     ["limit: aiokafka + bare fastavro", fmt(p["raw_fastavro_per_s"])],
                     ["ratio pipeline / (aiokafka + codec)", fmt(p["ratio"], 4)]])
    if "worker_cpu_us_per_command" in p:
        lines += ["", f"The worker's CPU from the start of the commands' writing until every event is in the log "
                      f"(polled every 0.5 s): {fmt(p['worker_cpu_us_per_command'], 1)} µs a command, its matcher "
                      "included (it folds every event the deciders write and notes each task's waiting reason). "
                      "The limit's reader spends about 1 / its rate a record: "
                      f"{1e6 / p['raw_codec_per_s']['median']:.1f} µs."]
    if "first_event_after_commit_ms" in p:
        lines += ["", f"The worker's first event came {fmt(p['first_event_after_commit_ms'], 0)} ms after the commit. "
                      "(Until this definition, the rate was taken over the span of the events' own timestamps, "
                      "which leaves out whatever the worker decides before its first event is written.)"]
    return lines


def latency_section(lat: dict) -> list[str]:
    source = lat.get("rate_from", "half the median end-to-end rate of section 1")
    lines = [f"Command: `{lat['command']}`", "",
             f"{lat['tasks_per_run']:,} tasks a run submitted open loop at {lat['rate']:.2f} tasks/s ({source})"
             + (f", after {lat['warm_up_s']:g} s of the same loop that is not measured (the fresh fabric's start)"
                if "warm_up_s" in lat else "") + ": "
             "submissions go out on a fixed schedule whether or not earlier tasks have finished. Each task: one "
             "`POST /api/tasks`, then `GET /api/tasks/{id}/events` as a client does; the clock starts before the POST. "
             "\"In the log\" is when the bench's reader of the task events topic (committed records only) saw the "
             "task's `TaskCompleted`: without the feed. The last row is from the records' own timestamps (the API's "
             "producer stamps `SubmitTask`, the worker's `TaskCompleted`): without the HTTP request and without the "
             "bench's reading.", ""]
    lines += _latency_tables(lat, "at this rate (first run; warm-up tasks included)")
    lines += ["", f"A percentile is shown only where a run's sample supports it (at least 100 / (100 − p) × 10 "
              f"samples: {samples_for(99):,} for p99, {samples_for(99.9):,} for p99.9); with "
              f"{lat['tasks_per_run']:,} samples a run, the tail beyond that is the max, named as such. The target "
              f"(p99 < {lat.get('target_ms', 100)} ms) is judged on the TaskCompleted frame here, and on the TaskCompleted in "
              "the log for the producer client's runs below."]
    again = [r["posts_sent_again"] for r in lat["runs"] if "posts_sent_again" in r]
    if again:
        lines += ["", f"POSTs sent a second time because the server had closed the kept-alive connection they went "
                  f"out on: {sum(again)} over the {len(again)} runs (their clock runs from the first attempt)."]
    by_producer = lat.get("producer")
    if by_producer:
        lines += ["", "### Submitted with the producer client at the same rate", "",
                  f"As many runs again on fresh fabrics: {by_producer['tasks_per_run']:,} tasks at "
                  f"{by_producer['rate']:.2f} tasks/s, each sent by `TaskProducer.submit` (one task a call, open loop) "
                  "as a program that writes its tasks to Kafka does; such a program sees a task end when its "
                  "`TaskCompleted` is in the log, so the clock runs from the submit to that. No HTTP request and no "
                  "feed: the fabric's own latency at this rate.", ""]
        lines += _latency_tables(by_producer, "submitted with the producer client (first run)", "completed_in_log")
    low = lat.get("low")
    if low:
        lines += ["", f"### Below saturation: the same at {low['rate']:.0f} tasks/s", "",
                  f"As many runs again, each on a fresh fabric started and warmed up as above: {low['tasks_per_run']:,} "
                  f"tasks submitted the same way at {low['rate']:.0f} tasks/s, where neither the fabric nor the bench "
                  "client is short of CPU. Not the target's rate; shown beside it.", ""]
        lines += _latency_tables(low, f"at {low['rate']:.0f} tasks/s (first run)")
    return lines


def _latency_tables(lat: dict, where: str, judged: str = "completed") -> list[str]:
    """The quantiles of each measure, the hops of the first run, the CPU of each run."""
    lines = []
    qs = latency_quantiles(lat, judged)
    rows = [[name, *(fmt(v) if (v := quantile(lat, key, q)) else "—" for q in qs)]
            for name, key in (("submit → acknowledged by the broker", "acknowledged"),
                              ("submit → first SSE frame", "first_frame"), ("submit → TaskCompleted frame", "completed"),
                              ("submit → TaskCompleted in the log", "completed_in_log"),
                              ("SubmitTask record → TaskCompleted record (their timestamps)", "in_records"),
                              ("(the bench client's delay in starting a submit, behind its schedule)", "submit_late"))
            if key in lat["runs"][0]]
    lines += _table(["ms", *qs], rows)
    hops = lat["runs"][0].get("hops")
    if hops:
        cols = hop_columns(hops, lat["tasks_per_run"])
        lines += ["", f"Each hop of a task {where}, from the records' timestamps:",
                  ""]
        lines += _table(["hop", "done by", *(c.replace("_ms", " ms") for c in cols)],
                        [[hop, v["by"], *(f"{v[c]:.0f}" for c in cols)] for hop, v in hops.items()])
    if "cpu_cores_used" in lat["runs"][0]:
        procs = list(lat["runs"][0]["cpu_cores_used"])
        lines += ["", "CPU used over each run, in cores (CPU seconds per second; this machine has 2), so a saturated "
                  "process, the bench client's included, shows:", ""]
        lines += _table(["run", *procs], [[i + 1, *(f"{r['cpu_cores_used'][p]:.2f}" for p in procs)]
                                          for i, r in enumerate(lat["runs"])])
    return lines


def latency_quantiles(lat: dict, frame: str = "completed") -> list[str]:
    return [q for q in ("p50", "p99", "p99.9") if quantile(lat, frame, q)] + ["max"]


ROUNDS_NOTE = " (the median of each round's own ratio)"


def replay_ratio(rp: dict) -> float:
    """Fold ÷ fastavro, wall clock: the median of the rounds' own ratios (older results: the ratio of medians)."""
    paired = rp.get("fold_over_fastavro")
    return paired["median"] if paired else rp["fold"]["median"] / rp["fastavro_decode"]["median"]


def replay_section(rp: dict) -> list[str]:
    lines = [f"Command: `{rp['command']}`", "",
             f"{rp['events']:,} task events ({rp['bytes_per_event']:.0f} bytes each on average) made by the domain's "
             "`decide` and encoded by the project's codec, read into memory from a length-prefixed file before timing. "
             "Fold = decode + `evolve` into one state per task; from Kafka = the same records on a 4-partition topic, "
             "consumed from the beginning, decoded and folded.", ""]
    names = [("fastavro decode only", "fastavro_decode"), ("project codec decode (Avro + domain objects)", "codec_decode"),
             ("evolve only (pre-decoded events)", "evolve_only"), ("fold: decode + evolve", "fold"),
             ("fold from Kafka", "fold_from_kafka")]
    cpu = rp.get("per_cpu_second", {})
    lines += _table(["", "events/s: median (min–max, spread)", "events per CPU-second"],
                    [[label, fmt(rp[key]), fmt(cpu[key]) if key in cpu else "—"] for label, key in names])
    ratio = [replay_ratio(rp)]
    if "fold" in cpu and "fastavro_decode" in cpu:
        ratio.append(cpu["fold"]["median"] / cpu["fastavro_decode"]["median"])
    paired = rp.get("fold_over_fastavro")
    how = (f"the median of {len(paired['values'])} rounds' ratios ({paired['min']:.2f}–{paired['max']:.2f}): each "
           "round times fastavro, the codec and the fold one after another" if paired else "a ratio of medians")
    lines += ["", f"Fold ÷ fastavro decode-only (target ≥ 0.6): {ratio[0]:.2f} wall clock, {how}"
                  + (f"; {ratio[1]:.2f} per CPU-second (medians)" if len(ratio) > 1 else "") + "."]
    lines += ["", "Events per CPU-second (the process's own CPU time) is the steadier figure on a shared machine: "
              "it is about what one quiet core would do. Folding from Kafka also waits on the broker, so it has only "
              "the wall-clock rate."]
    return lines


def memory_section(m: dict) -> list[str]:
    lines = [f"Command: `{m['command']}`", "",
             f"{m['tasks']:,} `SubmitTask` commands with no executor online: the worker decides each (submitted, "
             "validated) and keeps every task in its decider state and its matcher's queue. VmRSS from /proc after one "
             "warm-up task (before) and once all are decided (after).", ""]
    lines += _table(["process", "before (MiB)", f"at {m['tasks']:,} tasks (MiB)"],
                    [[p, fmt(m[f"{p}_before_mib"], 1), fmt(m[f"{p}_mib"], 1)] for p in ("worker", "api", "connect")])
    lines += ["", f"Worker growth per task: {fmt(m['worker_bytes_per_task'])} bytes."]
    return lines


def profile_section(pr: dict) -> list[str]:
    lines = [f"Command: `{pr['command']}` ({pr['tool']}). Only the thread holding the GIL is sampled, so samples "
             "are the process's Python CPU (waiting in `select` or in an idle thread is not counted), summed by function."]
    for key in ("pipeline", "e2e_worker", "e2e_connect"):
        p = pr[key]
        lines += ["", f"**{p['stage']}**: {p['rate']}; {p['samples']:,} samples holding the GIL; "
                  f"raw stacks in `{p['raw_file']}`.", ""]
        own = [[pct, f"`{f}`"] for f, pct in p["own"][:8]]
        ours = [[pct, f"`{f}`"] for f, pct in p["ours_total"][:10]]
        lines += _table(["% own", "function (most samples)"], own)
        lines += [""] + _table(["% total", "hive-streams function (samples in it or below)"], ours)
    return lines


def restart_section(rs: dict) -> list[str]:
    h = rs["history"]
    lines = [f"Command: `{rs['command']}`", "",
             f"A history of {rs['events']:,} events ({h['bytes_per_event']:.0f} bytes each on average; made in "
             f"{h['seconds_to_make']:.0f} s) on a fresh stack's task, agent and ledger event topics: {h['tasks']:,} tasks "
             f"(one in {round(h['tasks'] / max(1, h['priced_tasks']))} paid through an escrow), {h['agents']} agents, "
             "made by the domain's `decide` and written with the keys, partitions and headers of `Codec.message` "
             "(see `bench/restart.py`). Then `hive-streams worker` is started, left until its log says it owns every "
             f"one of the {rs['partitions']} command partitions (one `own <topic>[<p>]` line each), and stopped; then "
             "started again, as many times as the runs. Ready = when every partition was first owned (the latest of their "
             "first `own` lines), from just before the process was started. A worker writes a partition's snapshot after loading at least "
             f"{rs['snapshot_every_events']:,} events into it (`HIVE_SNAPSHOT_EVERY_EVENTS`); a partition with fewer "
             "is folded from the beginning at every start.", ""]
    starts = [("first start (no snapshot)", rs["cold"])] + [(f"start {i + 2} (from snapshots)", w)
                                                             for i, w in enumerate(rs["warm"])]
    fmt_s = lambda v: "—" if v is None else f"{v:,.2f}"
    lines += _table(["start", "ready (s)", "group joined, first load began (s)", "worker CPU to ready (s)",
                     "events folded", "partitions from a snapshot", "revoked after ready", "matcher caught up (s)"],
                    [[name, f"{w['ready_s']:,.2f}", fmt_s(w["first_load_began_s"]), fmt_s(w["cpu_s_to_ready"]),
                      f"{sum(p['events_folded'] for p in w['partitions'].values()):,}",
                      f"{sum(p['from'].startswith('snapshot at') for p in w['partitions'].values())} of "
                      f"{len(w['partitions'])}", revocations(w), fmt_s(w["matcher_caught_up_s"])]
                     for name, w in starts])
    lines += ["", f"Ready from snapshots: {fmt(rs['warm_ready_s'], 2)} s (target < {rs['target_s']:g} s at "
              f"{rs['target_events']:,} events" + (")." if rs["events"] >= rs["target_events"]
                                                  else f"; this history has {rs['events']:,}, so not judged here).")]
    if "snapshot_bytes" in rs:
        sizes = rs["snapshot_bytes"]
        tasks = [v for k, v in sizes.items() if k.startswith("task[")]
        lines += ["", f"Newest snapshots after the runs, before compression: the matcher's {sizes['matcher']:,} bytes; "
                      f"the task deciders' {min(tasks):,}–{max(tasks):,} bytes a partition."]
    warned = [(name, line) for name, w in starts for line in w.get("warnings", [])]
    if warned:
        lines += ["", "Warnings and errors in the workers' logs (seconds from process start):", ""]
        lines += [f"- {name}: `{line[:300]}`" for name, line in warned[:20]]
        lines += [f"- … and {len(warned) - 20} more"] if len(warned) > 20 else []
    lines += ["", "Per partition (aggregates, where the load started, events folded, seconds in `own`):", ""]
    parts = sorted(rs["cold"]["partitions"])
    lines += _table(["partition", "first start", *(f"start {i + 2}" for i in range(len(rs["warm"])))],
                    [[p.split(".", 1)[1], *(f"{w['partitions'][p]['aggregates']:,} agg., {w['partitions'][p]['from']}, "
                                           f"{w['partitions'][p]['events_folded']:,} ev., {w['partitions'][p]['load_s']:.2f} s"
                                           for w in (rs["cold"], *rs["warm"]))] for p in parts])
    lines += ["", "The matcher (led by the owner of the ledger partition) is not part of \"ready\": it starts once "
              "every partition is owned, from its newest snapshot (from the beginning of the event topics without "
              "one; a first start has none) and folds the tail; its column says when it "
              "logged that it had caught up (— : not within the wait). \"Revoked after ready\": the group took "
              "the partitions back after the worker had owned them all (e.g. it evicted the member because the "
              "assignment, which includes the load, took longer than the session timeout), and when the worker "
              "owned them all again; the per-partition table shows each partition's first ownership."]
    return lines


def revocations(w: dict) -> str:
    if not w.get("revoked"):
        return "no"
    first = w["revoked"][0]
    return (f"{len(w['revoked'])}× (first at {first['at_s']:.1f} s; all owned again at "
            f"{w['last_own_s']:.1f} s)")


def idle_section(i: dict) -> list[str]:
    lines = [f"Command: `{i['command']}`", "",
             f"A fresh fabric (worker, API, connector, {PROCESSES} executors) with nothing to do: CPU of each process, "
             f"the broker's and PostgreSQL's, in cores (CPU seconds per second), over {i['window_s']} s starting "
             f"{i['settle_s']} s after the processes were started. What a fabric left running costs; at load this "
             "CPU is part of every task's.", ""]
    rows = [[name, fmt(i[f"cores_{name}"], 3)] for name in i["processes"]] + [["total", fmt(i["total_cores"], 3)]]
    return lines + _table(["process", "cores: median (min–max, spread)"], rows)


def transactions_section(t: dict) -> list[str]:
    lines = [f"Command: `{t['command']}`", "",
             f"A decider's transaction with the project's clients on fresh one-partition topics: begin, the consumed "
             f"offset, N records of {t['record_bytes']} bytes, commit; back to back for {t['window_s']} s per size. "
             "Beside it the same records from the plain idempotent producer, each batch acknowledged before the "
             "next. Broker CPU is the broker's over the window less its idle CPU over an equal window before it"
             + ("." if t["broker_measured"] else " (not measured: the bench did not start this broker)."), ""]

    def ms(kind: dict, q: str) -> str:
        return fmt(kind[f"{q}_ms"], 1) if f"{q}_ms" in kind else "too few"
    rows = [[c["records_per_batch"], fmt(c["transactional"]["per_s"]), fmt(c["transactional"]["records_per_s"]),
             ms(c["transactional"], "p50"), fmt(c["transactional"]["broker_ms_per_batch"], 2),
             fmt(c["transactional"]["broker_us_per_record"]), fmt(c["plain"]["records_per_s"]),
             fmt(c["plain"]["broker_us_per_record"])] for c in t["cases"]]
    return lines + _table(["records per transaction", "transactions/s", "records/s", "one transaction p50 (ms)",
                           "broker CPU per transaction (ms)", "broker CPU per record (µs)", "plain: records/s",
                           "plain: broker CPU per record (µs)"], rows)


def connector_section(k: dict) -> list[str]:
    lines = [f"Command: `{k['command']}`", "",
             f"The records of {k['tasks_per_run']:,} no-op task lives (the five events each writes in section 1, "
             f"on {k['partitions']} partitions a topic) through the audit connector's own path (decode, then the "
             f"audit rows, read models and offsets in one transaction) in batches of {k['batch']}, on a fresh "
             "database, without a broker. Connector CPU is the bench process's; PostgreSQL's is its backend's.", ""]
    rows = [["records/s", fmt(k["records_per_s"])],
            ["connector CPU per record (µs)", fmt(k["connector_cpu_us_per_record"])],
            ["PostgreSQL CPU per record (µs)", fmt(k["postgresql_cpu_us_per_record"])],
            ["wall time per record (µs)", fmt(k["wall_us_per_record"])],
            ["connector and PostgreSQL CPU per task (ms)", fmt(k["cpu_ms_per_task"], 2)]]
    return lines + _table(["measure", "median (min–max, spread)"], rows)


SECTIONS = [("tasks", "1. Tasks per second: hive-streams vs Celery with Redis", tasks_section),
            ("pipeline", "2. Pipeline event throughput vs the limit", pipeline_section),
            ("latency", "3. Latency at half the maximum rate", latency_section),
            ("replay", "4. Replay", replay_section),
            ("memory", "5. Memory with tasks in state", memory_section),
            ("restart", "6. Restart of a worker with a long history", restart_section),
            ("idle", "7. An idle fabric", idle_section),
            ("transactions", "8. What a decider's transaction costs", transactions_section),
            ("connector", "9. The audit connector's cost per record", connector_section),
            ("profile", "Profile of the slowest stage", profile_section)]


def rate_drift(results: dict) -> list[str]:
    """A warning when the latency section did not run at half of section 1's figures as they stand now (section 1
    taken again alone after it, or a `--rate` of its own)."""
    lat, tasks = results.get("latency"), results.get("tasks")
    if not lat or not tasks:
        return []
    sustained, variant = sustained_rate(tasks)
    half = sustained / 2
    if abs(lat["rate"] - half) <= 0.01 * half:
        return []
    return ["", f"> **Not at half of section 1's rate as it stands:** this section ran at {lat['rate']:.2f} tasks/s; "
                f"half of section 1's best median ({variant}, {sustained:.1f} tasks/s) is {half:.2f} "
                f"({lat['rate'] / half:.2f}× that). Take `latency` again to judge its target at that rate."]


def taken(section: dict) -> str:
    """When and on which code a section's figures were taken: sections are kept from earlier invocations."""
    t = section.get("taken")
    if not t:
        return "_Taken by an earlier invocation that did not record when or on which code._"
    return f"_Taken {t['at']} on {t['code']}; load average at the end {t['load_at_end']}._"


def write(results: dict, out: Path, with_chart: bool = True) -> Path:
    meta = results["meta"]
    lines = ["# hive-streams benchmarks", "",
             f"Mode `{meta['mode']}`, {meta['repeats']} run(s) of each figure: median, then min–max and spread "
             "((max − min) / median). Every section names the command that produced it and when, on which code, it "
             "ran (a section run alone replaces only its own figures); `make bench` runs them all. "
             "Percentiles appear only where the sample supports them (at least 100 / (100 − p) × 10 samples); "
             "otherwise the maximum is given, named as such. Each target is judged on the one measure its row "
             "names.", "",
             f"> **These figures were taken on a shared, busy machine** ({meta['machine']['cpu']}, "
             f"{meta['machine']['memory']}) while other sessions ran their test suites on the same cores and the same "
             f"Kafka broker: load average (1, 5, 15 min) {meta['machine']['load_at_start']} at the start, "
             f"{meta.get('load_at_end', '?')} at the end. Compare figures of one run with each other; absolute numbers "
             "on a quiet machine will be higher.", "",
             "## Summary against the targets", ""]
    lines += _table(["measurement", "target", "result (median)", "met"], summary_rows(results))
    lines += ["", "## Machine and versions", ""]
    machine = meta["machine"]
    lines += _table(["", ""], [["CPU", machine["cpu"]], ["memory", machine["memory"]], ["kernel", machine["kernel"]],
                               *[[k, v] for k, v in machine["versions"].items()]])
    for key, title, render in SECTIONS:
        if key in results:
            lines += ["", f"## {title}", "", taken(results[key]), "", *render(results[key])]
            if key == "latency":
                lines += rate_drift(results)
    lines += ["", "## Chart", "", f"![benchmarks]({CHART})", ""]
    if with_chart:
        chart(results, out / CHART)
    path = out / "REPORT.md"
    path.write_text("\n".join(lines))
    return path


def _bars(ax, labels, summaries, title, ylabel, log=False, colors=None):
    med = [s["median"] for s in summaries]
    err = [[m - s["min"] for m, s in zip(med, summaries)], [s["max"] - m for m, s in zip(med, summaries)]]
    ax.bar(range(len(med)), med, yerr=err, capsize=4, color=colors or "tab:blue")
    ax.set_xticks(range(len(med)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel, fontsize=8)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for i, m in enumerate(med):
        ax.annotate(f"{m:,.0f}" if m >= 10 else f"{m:.2f}", (i, m), ha="center", va="bottom", fontsize=7)


CHART_SECTIONS = {"1.": "tasks", "2.": "pipeline", "3.": "latency", "4.": "replay", "5.": "memory", "6.": "restart",
                  "hive-streams:": "tasks"}


def chart(r: dict, path: Path) -> None:
    fig, axes = plt.subplots(3, 3, figsize=(15, 13))
    ax = iter(axes.flat)
    if "tasks" in r:
        t = r["tasks"]
        _bars(next(ax), ["hive: HTTP batches", "hive: producer", "Celery + Redis"],
              [t["hive_http"]["tasks_per_s"], t["hive_producer"]["tasks_per_s"], t["celery"]["tasks_per_s"]],
              "1. tasks/s end to end (no-op node)", "tasks/s", colors=["tab:blue", "tab:blue", "tab:green"])
        _bars(next(ax), ["hive: HTTP batches", "hive: producer", "Celery + Redis"],
              [t["hive_http"]["system_cpu_ms_per_task"], t["hive_producer"]["system_cpu_ms_per_task"],
               t["celery"]["system_cpu_ms_per_task"]], "1. CPU per task, servers included", "ms",
              colors=["tab:blue", "tab:blue", "tab:green"])
    if "pipeline" in r:
        p = r["pipeline"]
        _bars(next(ax), ["pipeline cmds", "pipeline events", "aiokafka+codec", "aiokafka+fastavro"],
              [p["pipeline_commands_per_s"], p["pipeline_events_per_s"], p["raw_codec_per_s"], p["raw_fastavro_per_s"]],
              f"2. pipeline vs limit (ratio {p['ratio']['median']:.4f})", "records/s (log)", log=True,
              colors=["tab:blue", "tab:blue", "tab:gray", "tab:gray"])
    if "latency" in r:
        lat = r["latency"]
        keys = [(f, q) for f in ("first_frame", "completed") for q in latency_quantiles(lat)]
        a = next(ax)
        _bars(a, [f"{'first' if f == 'first_frame' else 'completed'} {q}" for f, q in keys],
              [quantile(lat, f, q) for f, q in keys], f"3. latency at {lat['rate']:.1f} tasks/s", "ms")
        a.axhline(100, color="tab:red", linestyle="--", linewidth=1)
    if "replay" in r:
        rp = r["replay"]
        keys = ["fastavro_decode", "codec_decode", "evolve_only", "fold", "fold_from_kafka"]
        a = next(ax)
        _bars(a, ["fastavro", "codec decode", "evolve only", "fold", "fold (Kafka)"], [rp[k] for k in keys],
              f"4. replay of {rp['events']:,} events", "events/s (dots: per CPU-second)")
        cpu = rp.get("per_cpu_second", {})
        a.plot([i for i, k in enumerate(keys) if k in cpu], [cpu[k]["median"] for k in keys if k in cpu], "o",
               color="tab:purple", label="per CPU-second")
        a.axhline(0.6 * rp["fastavro_decode"]["median"], color="tab:red", linestyle="--", linewidth=1)  # the target
    if "memory" in r:
        m = r["memory"]
        procs = ["worker", "api", "connect"]
        _bars(next(ax), [f"{p} {w}" for p in procs for w in ("before", "after")],
              [m[f"{p}{w}_mib"] for p in procs for w in ("_before", "")], f"5. RSS at {m['tasks']:,} tasks", "MiB",
              colors=["tab:gray", "tab:blue"] * 3)
    if "restart" in r:
        rs = r["restart"]
        a = next(ax)
        _bars(a, ["first start (no snapshot)", "from snapshots"], [rs["cold_ready_s"], rs["warm_ready_s"]],
              f"6. worker ready, {rs['events']:,} events in history", "s", colors=["tab:gray", "tab:blue"])
        a.axhline(rs["target_s"], color="tab:red", linestyle="--", linewidth=1)
    if "tasks" in r:
        hops = r["tasks"]["hive_http"]["runs"][0]["hops"]
        shown = hop_columns(hops, r["tasks"]["setup"]["tasks_per_run"])[0]
        a = next(ax)
        names = list(hops)[::-1]
        a.barh(range(len(names)), [hops[h][shown] for h in names], color="tab:orange")
        a.set_yticks(range(len(names)), [f"{h}\n({hops[h]['by']})" for h in names], fontsize=6)
        a.set_title(f"hive-streams: {shown.replace('_ms', '')} ms per hop of a task", fontsize=10)
    for a in ax:
        a.axis("off")
    for a in axes.flat:  # each chart says when its figures were taken: sections are kept from earlier runs
        title = a.get_title()
        key = CHART_SECTIONS.get(title.split(" ", 1)[0]) if title else None
        if key in r:
            t = r[key].get("taken")
            a.set_title(f"{title}\n({'taken ' + t['at'][:16] if t else 'an earlier, undated run'})", fontsize=10)
    fig.suptitle("hive-streams benchmarks (shared, busy 2-core machine; bars: median, whiskers: min–max; red: target)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
