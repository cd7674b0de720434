from hive_streams.domain import commands as c
from hive_streams.domain.model import NodeSpec, node_digest, result_digest
from hive_streams.domain.task import TaskState
from hive_streams.executor.signing import Signer
from hive_streams.streams.verify import screen
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SIGNER = Signer(Ed25519PrivateKey.generate())
OTHER = Signer(Ed25519PrivateKey.generate())
STATE = TaskState("t1", status="running", agent_id="ag", attempt=2, agent_key=SIGNER.public_key,
                  nodes=(NodeSpec("a", "echo"),), node_status={"a": "completed"}, outputs={"a": '"x"'})


def report(output='"x"', signer=SIGNER, agent="ag", digest=None):
    digest = digest or node_digest("t1", 2, "a", output)
    return c.ReportNodeCompleted("t1", "k", 1, agent, 2, "a", output, digest, signer.sign(digest))


def test_a_signed_report_passes():
    cmd = report()
    assert screen(cmd, STATE) is cmd


def test_a_flipped_output_is_rejected():
    good = report()
    tampered = c.ReportNodeCompleted(**{**good.__dict__, "output_json": '"y"'})
    assert screen(tampered, STATE).reason == "output digest does not match the output"


def test_another_key_is_rejected():
    assert screen(report(signer=OTHER), STATE).reason == "bad signature"


def test_a_result_from_an_unassigned_agent_is_rejected():
    rejected = screen(report(agent="impostor"), STATE)
    assert isinstance(rejected, c.RejectResult) and rejected.agent_id == "impostor"


def test_the_final_result_signature_covers_every_output():
    digest = result_digest("t1", 2, {"a": '"x"'})
    ok = c.ReportTaskResult("t1", "r", 1, "ag", 2, digest, SIGNER.sign(digest))
    assert screen(ok, STATE) is ok
    wrong = result_digest("t1", 2, {"a": '"z"'})
    assert screen(c.ReportTaskResult("t1", "r", 1, "ag", 2, wrong, SIGNER.sign(wrong)), STATE).reason.startswith("output digest")


KEYLESS = TaskState("t1", status="running", agent_id="ag", attempt=2, nodes=(NodeSpec("a", "echo"),),
                    node_status={"a": "completed"}, outputs={"a": '"x"'})


def test_a_keyless_agent_still_has_its_digests_checked():
    honest = report()
    assert screen(honest, KEYLESS) is honest
    lying = c.ReportNodeCompleted(**{**honest.__dict__, "output_json": '"y"'})
    assert screen(lying, KEYLESS).reason == "output digest does not match the output"
    wrong = result_digest("t1", 2, {"a": '"z"'})
    assert screen(c.ReportTaskResult("t1", "r", 1, "ag", 2, wrong, ""), KEYLESS).reason.startswith("output digest")


def test_a_keyless_agent_holding_priced_work_is_rejected():
    priced = TaskState(**{**KEYLESS.__dict__, "escrow_id": "esc"})
    digest = result_digest("t1", 2, {"a": '"x"'})
    rejected = screen(c.ReportTaskResult("t1", "r", 1, "ag", 2, digest, ""), priced)
    assert isinstance(rejected, c.RejectResult) and "key" in rejected.reason


def test_a_keyed_agent_cannot_leave_its_result_unsigned():
    digest = result_digest("t1", 2, {"a": '"x"'})
    assert isinstance(screen(c.ReportTaskResult("t1", "r", 1, "ag", 2, digest, ""), STATE), c.RejectResult)
