import dataclasses
import os
import subprocess
import sys

import pytest

from hive_streams.exceptions import ConfigError
from hive_streams.executor.errors import NodeError
from hive_streams.executor.runners import NodeRunner
from hive_streams.executor.sandbox import INPUTS_DIR, Box, Limits, Sandbox
from hive_streams.settings import Settings

LIMITS = Limits(cpu_seconds=60, memory_mb=512, processes=64, file_mb=100, output_kb=1024)
BOX = Box("/tmp/hive-node-1", "/tmp/hive-aux-1/tmp", "/tmp/hive-aux-1/inputs")


def sandbox(**changes) -> Sandbox:
    base = Sandbox(LIMITS, passthrough_env=("LANG",), python_path=("/opt/py/lib", "/srv/app"),
                   system_links=(("/lib", "usr/lib"),), system_dirs=("/lib64",), bwrap="bwrap")
    return dataclasses.replace(base, **changes)


def pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_namespaces_and_kill_with_parent():
    argv = sandbox().argv(["sh", "-c", "true"], BOX, LIMITS)
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--unshare-net", "--unshare-user", "--disable-userns"):
        assert flag in argv
    assert argv[-3:] == ["sh", "-c", "true"]


def test_network_only_when_declared_and_allowed():
    assert "--unshare-net" not in sandbox().argv(["true"], dataclasses.replace(BOX, network=True), LIMITS)
    closed = sandbox(network_allowed=False)
    assert "--unshare-net" in closed.argv(["true"], dataclasses.replace(BOX, network=True), LIMITS)


def test_only_system_dirs_the_work_dirs_and_inputs_are_mounted():
    argv = sandbox().argv(["true"], BOX, LIMITS)
    assert pairs(argv, "--ro-bind") == ["/usr", "/lib64", "/tmp/hive-aux-1/inputs"]
    assert pairs(argv, "--bind") == ["/tmp/hive-aux-1/tmp", BOX.workdir]
    assert all(p.startswith("/etc/") for p in pairs(argv, "--ro-bind-try"))
    assert pairs(argv, "--chdir") == [BOX.workdir]
    assert "/srv/app" not in argv  # a shell node sees no Python import path


def test_python_nodes_see_their_import_path_with_secrets_hidden(tmp_path):
    home = tmp_path / "app" / ".hive"
    home.mkdir(parents=True)
    box = dataclasses.replace(BOX, python=True)
    argv = sandbox(hidden=(str(home), "/elsewhere")).argv(["python3"], box, LIMITS, (str(tmp_path / "app"),))
    assert str(tmp_path / "app") in pairs(argv, "--ro-bind")
    assert pairs(argv, "--tmpfs") == [str(home)]  # covered by an empty dir; /elsewhere is not mounted at all
    made = pairs(argv, "--dir")
    assert str(tmp_path) in made and argv[argv.index(str(tmp_path)) - 3:argv.index(str(tmp_path))] == [
        "--perms", "0755", "--dir"]


def test_python_binds_outermost_first_never_root():
    s = sandbox(python_path=("/", "/srv/app", "/srv/app/lib", "relative"))
    binds = s.python_binds
    assert "/" not in binds and "relative" not in binds and "/srv/app/lib" not in binds and "/srv/app" in binds


def test_rlimits_inside_and_a_uid_of_its_own_under_root():
    argv = sandbox().argv(["true"], BOX, LIMITS)
    rl = argv[argv.index("prlimit"):argv.index("true")]
    assert rl == ["prlimit", "--cpu=60:61", f"--as={512 << 20}", "--nproc=64", f"--fsize={100 << 20}",
                  "--core=0", "--"]
    assert "setpriv" not in argv
    root = sandbox(as_root=True).argv(["true"], dataclasses.replace(BOX, uid=4000123), LIMITS)
    assert "--unshare-user" not in root
    priv = root[root.index("setpriv"):root.index("prlimit")]
    assert "--reuid=4000123" in priv and "--no-new-privs" in priv and "--bounding-set=-all" in priv


def test_environment_is_an_allow_list():
    outer = {"LANG": "C.UTF-8", "HIVE_DATABASE_URL": "postgresql://secret", "HIVE_JWT_SECRET": "s", "PATH": "/x"}
    env = sandbox().env(BOX, {"HIVE_INPUT_A": "1"}, outer)
    assert env == {"LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": BOX.workdir, "TMPDIR": "/tmp",
                   "HIVE_INPUTS_DIR": INPUTS_DIR, "HIVE_INPUT_A": "1"}
    python = sandbox().env(dataclasses.replace(BOX, python=True), {}, outer)
    assert python["PYTHONPATH"] == os.pathsep.join(("/opt/py/lib", "/srv/app"))


def test_node_limits_up_to_the_maxima():
    assert LIMITS.narrowed(None) == LIMITS
    assert LIMITS.narrowed({"cpu_seconds": 2, "memory_mb": 64}) == dataclasses.replace(LIMITS, cpu_seconds=2,
                                                                                        memory_mb=64)
    with pytest.raises(NodeError, match="over this executor's maximum of 64"):
        LIMITS.narrowed({"processes": 65})
    with pytest.raises(NodeError, match="unknown limit 'gpus'"):
        LIMITS.narrowed({"gpus": 1})
    with pytest.raises(NodeError, match="unknown limit 'output_kb'"):  # the inline limit is the executor's
        LIMITS.narrowed({"output_kb": 1})
    assert LIMITS.narrowed({"output_mb": 1}).output_bytes == 1024 * 1024
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(NodeError, match="positive integer"):
            LIMITS.narrowed({"file_mb": bad})
    with pytest.raises(NodeError, match="mapping"):
        LIMITS.narrowed([1])


def test_an_executor_whose_sandbox_does_not_work_refuses_to_start():
    with pytest.raises(ConfigError, match="needs '/nonexistent/bwrap'.*bubblewrap"):
        dataclasses.replace(Sandbox.from_settings(Settings()), bwrap="/nonexistent/bwrap").probe()
    with pytest.raises(ConfigError, match="does not work on this machine"):
        NodeRunner.from_settings(Settings(sandbox_memory_mb=1))
    # kinds that need no sandbox need no probe
    assert NodeRunner.from_settings(Settings(sandbox_memory_mb=1), ["echo", "http", "gpu"]).kinds == {"echo", "http"}


def test_the_executor_process_refuses_to_start_and_says_why(tmp_path):
    env = {**os.environ, "HIVE_HOME": str(tmp_path), "HIVE_SANDBOX_MEMORY_MB": "1"}
    done = subprocess.run([sys.executable, "-m", "hive_streams.cli", "executor", "--agent-id", "x",
                           "--capabilities", "echo,shell"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "hive-streams executor: the node sandbox does not work on this machine" in done.stderr
    assert not (tmp_path / "keys").exists()  # it stopped before making a key
