# world: filter
"""For the sandbox tests only (never configured in a cloud): a Python filter
that tries to reach the outside (a file, the directory tree, the
environment, the arguments, a socket) and rejects every host with one reason
saying what it saw, e.g. `file:FileNotFoundError listdir:... env:0 ...`.
Randomness, clocks and print work and reach nothing."""

import os
import sys
import time

import wit_world
from wit_world.imports import types

import novum_plugin


def _attempt(label, call):
    try:
        return f"{label}:{call()}"
    except Exception as error:
        return f"{label}:{type(error).__name__}"


def _connect():
    import socket

    with socket.create_connection(("127.0.0.1", 22), timeout=0.01):
        return "connected"


def _probe():
    print("written to stdout, which goes nowhere")
    return " ".join(
        [
            _attempt("file", lambda: len(open("/etc/passwd").read())),
            _attempt("listdir", lambda: len(os.listdir("/"))),
            f"env:{len(os.environ)}",
            f"argv:{len(sys.argv)}",
            _attempt("socket", _connect),
            f"random:{len(os.urandom(16))}",
            f"clock:{time.time() > 1.7e9}",
        ]
    )


class WitWorld(novum_plugin.Filter, wit_world.WitWorld):
    NAME = "sandbox-probe-filter"
    DESCRIPTION = "reports what a Python plugin can reach (sandbox tests)"
    NEEDS = []

    def verdicts(self, hosts):
        seen = _probe()
        return [seen] * hosts.len
