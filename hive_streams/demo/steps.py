"""Python node functions used by the demo workflow."""


def combine(params: dict, inputs: dict) -> dict:
    facts = inputs.get("facts", {})
    return {"lines": len(str(facts.get("stdout", "")).splitlines()), "inputs": sorted(inputs)}
