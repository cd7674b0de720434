"""Cross-aggregate steps: events of one aggregate become commands to another."""
from __future__ import annotations

from ..codec import Codec, event_id
from ..domain import commands as c
from ..domain import events as e
from ..exceptions import CodecError

SOURCE = "/hive-streams/relay"


def follow_up(event) -> list:
    """The commands that must follow an event. Pure; every command is idempotent at its decider."""
    cid = f"{event_id(event)}"
    if isinstance(event, e.SlotReserved):
        return [c.AssignTask(event.task_id, cid, event.at, event.agent_id)]
    if isinstance(event, e.AgentStatusChanged):
        return [c.ReportAgentLost(task_id, f"{cid}:{task_id}", event.at, event.agent_id) for task_id in event.lost_tasks]
    if isinstance(event, (e.TaskAssignmentDeclined, e.TaskRetryScheduled)) and event.agent_id:
        return [c.ReleaseSlot(event.agent_id, cid, event.at, event.task_id)]
    if isinstance(event, (e.TaskCompleted, e.TaskFailed, e.TaskCancelled)) and event.agent_id:
        return [c.ReleaseSlot(event.agent_id, cid, event.at, event.task_id)]
    if isinstance(event, e.TaskSubmitted):
        return [c.WatchTask(dependency, f"{cid}:{dependency}", event.at, event.task_id) for dependency in event.after]
    if isinstance(event, e.TaskOutcomeShared):
        return [c.DependencyFinished(event.watcher, cid, event.at, event.task_id, event.outcome)]
    return []


class Relay:
    def __init__(self, codec: Codec, targets: dict[type, object]):
        self.codec = codec
        self.targets = targets  # command base class -> faust topic

    async def handle(self, message) -> None:
        try:
            event = self.codec.decode(message.value)
        except CodecError:
            return  # events topics are written by deciders only; the audit connector reports strays
        for command in follow_up(event):
            topic = next(t for base, t in self.targets.items() if isinstance(command, base))
            k, v, headers = self.codec.message(command, SOURCE, causation_id=event_id(event))
            await (await topic.send(key=k, value=v, headers=headers))
