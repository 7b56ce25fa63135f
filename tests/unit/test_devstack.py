"""`make run`'s supervisor (salespulse.devstack), without servers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from salespulse.devstack.__main__ import Stack
from salespulse.devstack.servers import DevstackError


def test_a_process_of_the_stack_that_exits_stops_it_naming_its_log(tmp_path):
    stack = Stack(tmp_path)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    gone = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    gone.wait()
    try:
        stack.children += [("api", running, tmp_path / "logs/api.log"), ("Redis", gone, tmp_path / "redis/redis.log")]
        with pytest.raises(DevstackError, match=r"^Redis exited with code 3; see .*redis/redis\.log$"):
            stack.check_children()
        stack.children.pop()
        stack.check_children()  # all running: nothing to say
    finally:
        running.kill()
        running.wait()
