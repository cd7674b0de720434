import subprocess

import pytest

from hive_streams.executor.errors import NodeError
from hive_streams.executor.templates import input_env, input_files, render, render_shell

HOSTILE = "'; touch /tmp/pwned; echo \"$(id)\" `id` $HOME \\"


def sh(command: str, env: dict[str, str]) -> str:
    """What /bin/sh prints for the rendered command (no sandbox: only quoting is under test)."""
    return subprocess.run(["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, check=True).stdout


def test_data_rendering_keeps_the_values_text():
    inputs = {"a": "text", "b": {"k": 7}}
    assert render({"x": ["{{ nodes.a.output }}", "{{nodes.b.output.k}}"], "y": 3}, inputs) == {"x": ["text", "7"], "y": 3}


@pytest.mark.parametrize("template, expected", [
    ("echo {{ nodes.a.output }}", 'echo "$HIVE_INPUT_A"'),
    ("echo '{{ nodes.a.output }}'", "echo ''\"$HIVE_INPUT_A\"''"),
    ('echo "x {{ nodes.a.output }} y"', 'echo "x ${HIVE_INPUT_A} y"'),
    ("echo $(printf %s '{{ nodes.a.output }}')", "echo $(printf %s ''\"$HIVE_INPUT_A\"'')"),
    ('echo "$(echo {{ nodes.a.output }})"', 'echo "$(echo "$HIVE_INPUT_A")"'),
    ("echo `echo {{ nodes.a.output }}`", 'echo `echo "$HIVE_INPUT_A"`'),
    ("echo \\'{{ nodes.a.output }}", 'echo \\\'"$HIVE_INPUT_A"'),
    ("echo {{ nodes.my-node.output.body }}", 'echo "$HIVE_INPUT_MY_NODE__BODY"'),
])
def test_shell_references_become_quoted_variables(template, expected):
    inputs = {"a": HOSTILE, "my-node": {"body": HOSTILE}}
    command, env = render_shell(template, inputs)
    assert command == expected
    assert HOSTILE not in command and set(env.values()) == {HOSTILE}


@pytest.mark.parametrize("template", [
    "echo {{ nodes.a.output }}",
    "echo '{{ nodes.a.output }}'",
    'echo "{{ nodes.a.output }}"',
    "printf %s \"$(printf %s '{{ nodes.a.output }}')\"",
    "echo 'x: {{ nodes.a.output }} :y'",
])
def test_the_shell_sees_the_value_as_data(template, tmp_path):
    value = HOSTILE.replace("/tmp/pwned", str(tmp_path / "pwned"))
    command, env = render_shell(template, {"a": value})
    printed = sh(command, env)
    assert value in printed
    assert not (tmp_path / "pwned").exists()


def test_the_readme_and_demo_templates_still_print_the_value():
    command, env = render_shell("echo '{{ nodes.fetch.output.body }}' | wc -c", {"fetch": {"body": "hello"}})
    assert sh(command, env).strip() == "6"
    command, env = render_shell("echo 'report: {{ nodes.combine.output }}'", {"combine": {"lines": 2}})
    assert sh(command, env) == 'report: {"lines": 2}\n'


def test_shell_reference_errors():
    with pytest.raises(NodeError, match="no output from a dependency named 'zzz'"):
        render_shell("echo {{ nodes.zzz.output }}", {"a": 1})
    with pytest.raises(NodeError, match="both map to"):
        render_shell("echo {{ nodes.a-b.output }} {{ nodes.a_b.output }}", {"a-b": "1", "a_b": "2"})
    with pytest.raises(NodeError, match="HIVE_INPUTS_DIR/HIVE_INPUT_BIG"):
        render_shell("echo {{ nodes.big.output }}", {"big": "x" * 100_000})


def test_inputs_as_environment_and_files():
    inputs = {"small": {"v": 1}, "big": "x" * 100_000}
    env = input_env(inputs)
    assert env == {"HIVE_INPUT_SMALL": '{"v": 1}'}  # HIVE_INPUTS and the big one do not fit
    files = input_files(inputs)
    assert files["HIVE_INPUT_BIG"] == "x" * 100_000 and "inputs.json" in files
