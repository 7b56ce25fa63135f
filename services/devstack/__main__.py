"""Run SalesPulse on this machine: local Kafka and Redis, the processor, the API, alerting, the simulator.

    python -m salespulse.devstack run     # everything; what `make run` does
    python -m salespulse.devstack up      # only Kafka and Redis, for development

Kafka (KRaft, from Maven Central jars, data kept in var/devstack/kafka) and redis-server are
started unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set, in which case those are used.
SIMULATE=0 leaves the simulator out. Ctrl-C stops everything it started, newest first.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from salespulse.devstack.servers import DevstackError, LocalKafka, LocalRedis
from salespulse.settings import get_settings


def _say(text: str) -> None:
    print(f"[salespulse] {text}", flush=True)


class Stack:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stoppers: list = []
        self.env = dict(os.environ)
        # Every process started here, with its log: one that exits stops the whole stack with
        # an error, servers included (a Redis gone would otherwise leave the API answering 503).
        self.children: list[tuple[str, subprocess.Popen, Path]] = []

    def servers(self) -> None:
        if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
            _say(f"using Kafka at {os.environ['KAFKA_BOOTSTRAP_SERVERS']}")
        else:
            _say("starting Apache Kafka (KRaft) on 127.0.0.1:9092 ...")
            kafka = LocalKafka(self.home / "kafka").start()
            self.stoppers.append(("Kafka", kafka.stop))
            self.children.append(("Kafka", kafka.proc, kafka.log_path))
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
        if "REDIS_URL" in os.environ:
            _say(f"using Redis at {os.environ['REDIS_URL']}")
        else:
            _say("starting redis-server on 127.0.0.1:6379 ...")
            redis = LocalRedis(self.home / "redis").start()
            self.stoppers.append(("Redis", redis.stop))
            self.children.append(("Redis", redis.proc, redis.log_path))
            self.env["REDIS_URL"] = redis.url

    def spawn(self, name: str, module: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", module, *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, proc, self.logs / f"{name}.log"))
        self.stoppers.append((name, lambda: self._stop_child(proc)))

    @staticmethod
    def _stop_child(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def wait_ready(self, url: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise DevstackError(f"{url} was not ready after {timeout:.0f}s; see {self.logs}")

    def check_children(self) -> None:
        for name, proc, log in self.children:
            if proc.poll() is not None:
                raise DevstackError(f"{name} exited with code {proc.returncode}; see {log}")

    def stop(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        for name, stop in reversed(self.stoppers):
            _say(f"stopping {name}")
            stop()


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    stack = Stack(Path(args.home))
    try:
        stack.servers()
        if args.command == "run":
            # One worker under a fixed identity: restarted, it takes its partitions back at once.
            stack.env.setdefault("PROCESSOR_INSTANCE_ID", "local-processor-1")
            stack.spawn("processor", "salespulse.processor")
            stack.spawn("api", "salespulse.api")
            base = f"http://{settings.api_host}:{settings.api_port}"
            stack.wait_ready(f"{base}/readyz")
            stack.spawn("alerting", "salespulse.alerting")
            if os.environ.get("SIMULATE", "1") != "0":
                stack.spawn("simulator", "salespulse.simulator")
            _say("SalesPulse is running.")
            _say(f"  Wallboard:     {base}/")
            _say(f"  KPI catalog:   {base}/api/v1/kpis")
            _say(f"  Revenue today: {base}/api/v1/kpis/revenue?by=rep&period=day")
            _say(f"  Leaderboard:   {base}/api/v1/leaderboards/calls_outbound?period=day")
            _say(f"  Alerts:        {base}/api/v1/alerts   rules: {base}/api/v1/rules")
            _say(f"  API docs:      {base}/docs      metrics: {base}/metrics")
            _say(f"  Logs:          {stack.logs}/   Ctrl-C stops everything.")
        else:
            _say(f"Kafka at {stack.env['KAFKA_BOOTSTRAP_SERVERS']}, Redis at {stack.env['REDIS_URL']}; Ctrl-C stops them.")
        while True:
            stack.check_children()
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    except DevstackError as exc:
        _say(f"error: {exc}")
        stack.stop()
        sys.exit(1)
    stack.stop()


def main() -> None:
    os.environ.setdefault("SALESPULSE_ENV", "development")  # a laptop: no API key needed
    parser = argparse.ArgumentParser(description="Run SalesPulse locally.")
    parser.add_argument("command", choices=["run", "up"], nargs="?", default="run")
    parser.add_argument("--home", default=str(get_settings().data_dir / "devstack"),
                        help="where servers keep data and logs (default var/devstack)")
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started where SIGINT is ignored
        signal.signal(sig, _interrupt)
    run(args)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
