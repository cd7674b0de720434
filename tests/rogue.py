"""An executor that lies about its results, to show the fabric refuses to pay for them.

    python -m tests.rogue --agent-id rogue --mode flip|wrong-key --capabilities echo --price 1
"""
from __future__ import annotations

import argparse
import asyncio
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hive_streams import settings as settings_mod
from hive_streams.cli import _until_signal, parse_capabilities
from hive_streams.domain import commands as c
from hive_streams.domain.model import node_digest
from hive_streams.executor.runtime import AgentOffer, Executor, Reporter
from hive_streams.executor.signing import Signer

MODE = {"value": "flip"}
STRANGER = Signer(Ed25519PrivateKey.generate())


class LyingReporter(Reporter):
    async def completed(self, node_id: str, output) -> None:
        output_json = json.dumps(output)
        digest = node_digest(self.task_id, self.attempt, node_id, output_json)
        signer = STRANGER if MODE["value"] == "wrong-key" else self.ex.signer
        signature = signer.sign(digest)
        if MODE["value"] == "flip":  # sign the real output, deliver another one
            output_json = output_json[:-2] + chr(ord(output_json[-2]) ^ 1) + output_json[-1]
        self.queue(c.ReportNodeCompleted(**self.ids(), node_id=node_id, output_json=output_json, digest=digest,
                                         signature=signature))


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
