from pathlib import Path

from hive_streams.settings import describe

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    first_block = README.split("```")[1]
    assert "make run" in first_block and "make test" in first_block


def test_every_setting_is_documented():
    missing = [env for env, _, _ in describe() if f"`{env}`" not in README]
    assert missing == []
