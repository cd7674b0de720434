"""An executor that lies about its results, to show the fabric refuses to pay for them.

    python -m tests.rogue --agent-id rogue --mode flip|wrong-key --capabilities echo --price 1
"""
from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams import settings as settings_mod
from hive_streams.cli import _until_signal, parse_capabilities
from hive_streams.domain import commands as c
from hive_streams.domain.model import result_digest
from hive_streams.executor.runtime import AgentOffer, Executor, Reporter
from hive_streams.executor.signing import Signer

MODE = {"value": "flip"}
STRANGER = Signer(Ed25519PrivateKey.generate())


class LyingReporter(Reporter):
    """Signs the real outputs and delivers others (flip), or signs with a key that is not its own."""

    async def result(self) -> None:
        digest = result_digest(self.task_id, self.attempt, self.outputs)
        signer = STRANGER if MODE["value"] == "wrong-key" else self.ex.signer
        if MODE["value"] == "flip":
            self.pending = [replace(cmd, output_json=_flip(cmd.output_json)) if isinstance(cmd, c.ReportNodeCompleted)
                            else cmd for cmd in self.pending]
        self.queue(c.ReportTaskResult(**self.ids(), digest=digest, signature=signer.sign(digest)))
        await self.flush()


def _flip(output_json: str) -> str:
    return output_json[:-2] + chr(ord(output_json[-2]) ^ 1) + output_json[-1]


class RogueExecutor(Executor):
    reporter = LyingReporter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent-id", required=True)
    parser.add_argument("--mode", choices=["flip", "wrong-key"], default="flip")
    parser.add_argument("--capabilities", default="echo")
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--price", type=float, default=1.0)
    args = parser.parse_args()
    MODE["value"] = args.mode
    offer = AgentOffer(args.agent_id, args.agent_id, parse_capabilities(args.capabilities), args.slots, price=args.price)
    asyncio.run(_until_signal(RogueExecutor(settings_mod.load(), offer).run))


if __name__ == "__main__":
    main()
