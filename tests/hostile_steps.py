"""Python node functions that misbehave, for the hostile-task suite (standard library only)."""
import os
import subprocess
import time


def environment(params, inputs):
    return dict(os.environ)


def read_file(params, inputs):
    with open(params["path"], errors="replace") as f:
        return f.read()


def allocate(params, inputs):
    block = bytearray(params["gib"] << 30)
    return len(block)


def linger(params, inputs):
    """Starts a child, then spins: only the sandbox's kill can stop both."""
    subprocess.Popen(["sleep", params["marker"]])
    end = time.monotonic() + 60
    while time.monotonic() < end:
        pass
    return "finished"
