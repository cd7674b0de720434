"""Node functions for the workflow tests: each returns the workflow output convention."""
import time


def split(params: dict, inputs: dict) -> dict:
    return {"spawn": [{"node": "work", "input": item} for item in params["hive"]["state"]["items"]]}


def work(params: dict, inputs: dict) -> dict:
    """Sleeps so the items finish in item order, or in reverse for an execution whose id ends in -rev."""
    item = params["hive"]["input"]
    rank = -item if params["hive"]["execution_id"].endswith("-rev") else item
    time.sleep(1.0 + 1.5 * (rank % 4))
    return {"writes": {"results": item * 10, "total": item, "seen": [item]}}


def collect(params: dict, inputs: dict) -> dict:
    state = params["hive"]["state"]
    return {"writes": {"summary": f"{len(state['results'])} results, total {state['total']}"}}


def ask(params: dict, inputs: dict) -> dict:
    return {"writes": {"draft": "v1"}, "interrupt": {"question": "publish v1?"}}


def publish(params: dict, inputs: dict) -> dict:
    return {"writes": {"decision": params["hive"]["resume"]}}


def tick(params: dict, inputs: dict) -> dict:
    time.sleep(params.get("seconds", 0.5))
    return {"writes": {"count": 1, "trail": params["hive"]["step"]}}


def explode(params: dict, inputs: dict) -> dict:
    raise RuntimeError("boom")


def claim(params: dict, inputs: dict) -> dict:
    return {"writes": {"owner": params["hive"]["input"]}}
