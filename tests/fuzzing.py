"""Requests generated from the API's own OpenAPI document (schemathesis on hypothesis), sent as each role.

Generation runs per operation and role, valid (positive) and invalid (negative) inputs alike; the requests
then go out from a few threads at once. A feed (text/event-stream) is judged by its status and closed.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from schemathesis.generation import GenerationMode

TIMEOUT_SECONDS = 30
SHOWN_CHARS = 600  # of each failing request's curl command
log = logging.getLogger(__name__)


@dataclass
class Outcome:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # curl commands of 5xx answers
    unsent: list[str] = field(default_factory=list)  # the client could not send it (e.g. a header it refuses)
    dropped: list[str] = field(default_factory=list)  # the server closed the connection without an answer

    def add(self, other: "Outcome") -> None:
        self.sent += other.sent
        self.statuses.update(other.statuses)
        self.server_errors += other.server_errors
        self.unsent += other.unsent
        self.dropped += other.dropped


def load(base_url: str):
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def streams(document: dict) -> set[tuple[str, str]]:
    """(METHOD, path) of the operations that answer text/event-stream."""
    return {(method.upper(), path) for path, ops in document["paths"].items() for method, op in ops.items()
            if any("text/event-stream" in r.get("content", {}) for r in op["responses"].values())}


def cases(operation, examples: int, mode: GenerationMode, known: dict[str, str], seed: int) -> list:
    """Up to `examples` generated cases; a third of those with path parameters name things that exist."""
    out: list = []
    strategies = [operation.as_strategy(generation_mode=mode)]
    names = {p.name for p in operation.path_parameters}
    if names and names <= set(known):
        strategies.append(operation.as_strategy(generation_mode=mode,
                                                path_parameters={n: known[n] for n in names}))

    @hyp_seed(seed)
    @given(case=st.one_of(*strategies))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def collect(case):
        out.append(case)

    try:
        collect()
    except HypothesisException:
        pass  # nothing invalid to say about an operation without inputs
    return out


class Sender:
    def __init__(self, base_url: str, stream_ops: set[tuple[str, str]]):
        self.base_url = base_url
        self.stream_ops = stream_ops
        self.local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            session = requests.Session()
            # one retry when a kept-alive connection turns out closed by the server's idle timeout, a race of
            # connection reuse: a request the server itself drops fails again and is reported
            retry = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=None, raise_on_status=False)
            session.mount("http://", HTTPAdapter(max_retries=retry))
            self.local.session = session
        return self.local.session

    def send(self, case, token: str) -> Outcome:
        out = Outcome()
        headers = {"Authorization": f"Bearer {token}"}
        try:
            kwargs = case.as_transport_kwargs(base_url=self.base_url)
            kwargs.pop("timeout", None)
            kwargs["headers"] = {**{k: v for k, v in (kwargs.get("headers") or {}).items()
                                    if k.lower() != "authorization"}, **headers}  # the role's token, never a generated one
            with self._session().request(**kwargs, stream=True, timeout=TIMEOUT_SECONDS) as response:
                if (case.method.upper(), case.path) not in self.stream_ops:
                    response.content  # the whole answer, as a client reads it
                status = response.status_code
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError) as exc:
            out.unsent.append(f"{case.method} {case.path}: {exc!r}")
            return out
        except requests.exceptions.ConnectionError as exc:
            out.sent = 1
            out.dropped.append(f"{exc!r}: {case.as_curl_command(headers=headers)[:SHOWN_CHARS]}")
            return out
        out.sent = 1
        out.statuses[status] += 1
        if status >= 500:
            out.server_errors.append(f"{status}: {case.as_curl_command(headers=headers)[:SHOWN_CHARS]}")
        return out


def fuzz(schema, sender: Sender, tokens: list[str], known: dict[str, str], positive: int, negative: int,
         threads: int) -> Outcome:
    """Every operation's generated cases, each sent once with each token, while the next are generated."""
    total, pending = Outcome(), []
    with ThreadPoolExecutor(threads) as pool:
        for index, result in enumerate(schema.get_all_operations()):
            operation = result.ok()
            for mode, examples in ((GenerationMode.POSITIVE, positive), (GenerationMode.NEGATIVE, negative)):
                started = time.monotonic()
                made = cases(operation, examples, mode, known, seed=index)
                log.info("%s %s: %d cases in %.1f s; %d requests done of %d", operation.label, mode.value, len(made),
                         time.monotonic() - started, sum(f.done() for f in pending), len(pending))
                pending += [pool.submit(sender.send, case, token) for case in made for token in tokens]
        for future in pending:
            total.add(future.result())
    return total
