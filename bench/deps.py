"""The benchmark's own dependencies, installed on first use: Celery, redis-py, matplotlib, py-spy from PyPI
(the `bench` extra in pyproject.toml) and Debian's redis-server. None of them is a runtime dependency."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib

from .common import REPO

MODULES = ("celery", "redis", "matplotlib")


def ensure_python_packages() -> None:
    if all(importlib.util.find_spec(m) for m in MODULES) and shutil.which("py-spy"):
        return
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted], check=True)
    importlib.invalidate_caches()


def ensure_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("redis-server")
