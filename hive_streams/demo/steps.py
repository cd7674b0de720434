"""Python node functions used by the demo workflow."""


def combine(params: dict, inputs: dict) -> dict:
    lines = sum(len(str(v.get("stdout", "")).splitlines()) for v in inputs.values() if isinstance(v, dict))
    return {"lines": lines, "inputs": sorted(inputs)}
