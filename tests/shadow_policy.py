"""A matching policy named on the command line in the shadow replay test: the dearest agent first."""


def score(need, agent, reputation, free) -> float:
    return agent.price
