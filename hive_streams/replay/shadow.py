"""`hive-streams replay --policy NAME`: the recorded log through another matching policy, in simulated time.

NAME is `recorded` (the live matcher's weights), `cheapest`, `idlest`, `proficient`, `reputable`, a weighting
`weights:proficiency=0.2,cheapness=0.8` (names not given weigh 0), or a module `pkg.mod` / `pkg.mod:attr` whose
`policy` (or attr) is a `domain.matching.Policy` or a function `score(need, agent, reputation, free) -> float`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aiokafka import TopicPartition

from ..domain.matching import DEFAULT_POLICY, WEIGHTS, Policy
from ..domain.shadow import (Log, Placement, differences, in_reading_order, read_log, recorded_placements, simulate,
                             summarise)
from ..exceptions import CodecError, ConfigError
from ..kafka.access import KafkaAccess
from ..kafka.reader import read_to_end
from ..topics import Topics
from .rebuild import partitions_of

NAMED = {"recorded": DEFAULT_POLICY, "cheapest": Policy({"cheapness": 1.0}, "cheapest"),
         "idlest": Policy({"idleness": 1.0}, "idlest"), "proficient": Policy({"proficiency": 1.0}, "proficient"),
         "reputable": Policy({"reputation": 1.0}, "reputable")}


@dataclass(frozen=True)
class FunctionPolicy(Policy):
    function: Callable | None = None

    def score(self, need, a, reputation: float, free: int) -> float:
        return self.function(need, a, reputation, free)


def load_policy(name: str) -> Policy:
    if name in NAMED:
        return NAMED[name]
    if name.startswith("weights:"):
        weights = {}
        for part in filter(None, name[len("weights:"):].split(",")):
            key, _, value = part.partition("=")
            if key not in WEIGHTS:
                raise ConfigError(f"--policy: unknown weight {key!r}; one of {', '.join(WEIGHTS)}")
            try:
                weights[key] = float(value)
            except ValueError:
                raise ConfigError(f"--policy: weight {key} must be a number, not {value!r}") from None
        return Policy(weights, name)
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--policy: {name!r} is no named policy, weighting or importable module ({exc})") from None
    found = getattr(module, attr or "policy", None) or (None if attr else getattr(module, "score", None))
    if isinstance(found, Policy):
        return found
    if callable(found):
        return FunctionPolicy(name=name, function=found)
    raise ConfigError(f"--policy: module {module_name} has no `{attr or 'policy'}` Policy or `score` function")


async def read_events(kafka: KafkaAccess, codec, topics: Topics, advanced: Callable[[int], None]) -> list:
    """(partition index, offset, event) of every event the matcher reads, its partitions numbered as it numbers
    them (task, agent, then ledger events) so that its round ids can be read."""
    names = [topics.task_events, topics.agent_events, topics.ledger_events]
    tps, _, _ = await partitions_of(kafka, names)
    index = {tp: i for i, tp in enumerate(sorted(tps, key=lambda tp: (names.index(tp.topic), tp.partition)))}
    events, read = [], 0
    async for records in read_to_end(kafka, {tp: None for tp in tps}):
        for record in records:
            try:
                event = codec.decode(record.value)
            except (CodecError, TypeError):
                continue
            events.append((index[TopicPartition(record.topic, record.partition)], record.offset, event))
        read += len(records)
        advanced(read)
    return events


@dataclass(frozen=True)
class Shadow:
    policy: Policy
    log: Log
    recorded: dict[str, Placement]
    base: dict[str, Placement]  # the recorded policy, simulated
    shadow: dict[str, Placement]

    @property
    def unreproduced(self) -> list[tuple[str, str | None, str | None]]:
        """Recorded placements the simulation under the recorded policy does not make: it should make every one."""
        return [(t, ", ".join(p.agents), ", ".join(self.base[t].agents) or None)
                for t, p in sorted(self.recorded.items()) if self.base[t].agents != p.agents]


def run_shadow(records: list, policy: Policy, timeout_ms: int) -> Shadow:
    log = read_log(in_reading_order(records))
    return Shadow(policy, log, recorded_placements(log), simulate(log, DEFAULT_POLICY, timeout_ms),
                  simulate(log, policy, timeout_ms))


def rows(result: Shadow) -> list[tuple[str, str, str, str, str]]:
    """(measure, recorded log, recorded policy simulated, shadow policy simulated, shadow − simulated)."""
    runs = [summarise(result.recorded), summarise(result.base), summarise(result.shadow)]
    found = differences(result.base, result.shadow)
    out = [("tasks", *(str(s.tasks) for s in runs), "")]
    for agent_id in sorted({a for s in runs for a in s.per_agent}):
        counts = [s.per_agent.get(agent_id, 0) for s in runs]
        out.append((f"placed on {agent_id}", *map(str, counts), f"{counts[2] - counts[1]:+d}"))
    out.append(("not placed", *(str(s.unplaced) for s in runs), f"{runs[2].unplaced - runs[1].unplaced:+d}"))
    out.append(("same agent / moved", "", "", f"{len(found.same)} / {len(found.moved)}", ""))
    out.append(("mean queue wait (ms)", *(f"{s.mean_wait_ms:.0f}" for s in runs),
                f"{runs[2].mean_wait_ms - runs[1].mean_wait_ms:+.0f}"))
    out.append(("p95 queue wait (ms)", *(str(s.p95_wait_ms) for s in runs), f"{runs[2].p95_wait_ms - runs[1].p95_wait_ms:+d}"))
    out.append(("waited longer / less", "", "", f"{found.waited_longer} / {found.waited_less}", ""))
    out.append(("cost", *(f"{s.cost / 100:.2f}" for s in runs), f"{(runs[2].cost - runs[1].cost) / 100:+.2f}"))
    out.append(("deadline misses", *(str(s.missed) for s in runs), f"{runs[2].missed - runs[1].missed:+d}"))
    out.append(("newly missed / no longer", "", "", f"{len(found.newly_missed)} / {len(found.no_longer_missed)}", ""))
    return out


def chart(result: Shadow, path: Path) -> Path:
    """Placements per agent, queue waits, cost and deadline misses: the recorded policy against the shadow's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    base, shadow = summarise(result.base), summarise(result.shadow)
    names = ("recorded policy", result.policy.name)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    agent_ids = sorted(set(base.per_agent) | set(shadow.per_agent))
    x = range(len(agent_ids))
    for i, (s, label) in enumerate(((base, names[0]), (shadow, names[1]))):
        axes[0][0].bar([v + 0.4 * i for v in x], [s.per_agent.get(a, 0) for a in agent_ids], 0.4, label=label)
    axes[0][0].set_xticks([v + 0.2 for v in x], agent_ids)
    axes[0][0].set_title("tasks placed per agent")
    axes[0][0].legend()
    for run, label in ((result.base, names[0]), (result.shadow, names[1])):
        waits = sorted(p.wait_ms for p in run.values() if p.agent_id is not None)
        axes[0][1].plot(range(len(waits)), waits, label=label)
    axes[0][1].set_title("queue wait (ms), tasks sorted")
    axes[0][1].legend()
    axes[1][0].bar(names, [base.cost / 100, shadow.cost / 100], color=["tab:blue", "tab:orange"])
    axes[1][0].set_title("cost")
    axes[1][1].bar(names, [base.missed, shadow.missed], color=["tab:blue", "tab:orange"])
    axes[1][1].set_title("deadline misses")
    for ax in (axes[0][1], axes[1][0], axes[1][1]):
        ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]))
    fig.suptitle(f"shadow replay: {len(result.log.tasks)} recorded tasks under {result.policy.name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
