from pathlib import Path

from hive_streams.codec.schemagen import differences


def test_schemas_match_the_domain():
    problems = differences(Path(__file__).parent.parent / "schemas")
    assert problems == [], "run `python -m hive_streams.codec.schemagen --write` and the release command"
