"""A Trellis server process for the in-process benchmarks (search.py, profile_fanout.py):
started as ``make run`` starts it (``python -m config.launcher``, its own process group)
on the database this process uses, and a small blocking HTTP client for it.

The benchmarks fill the database in-process through the services first (fast, and the
same write path a request takes), then measure over HTTP against this server.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
C = "/_matrix/client/v3"


class Server:
    def __init__(self, bind: str, log_path: str, env: dict[str, str] | None = None) -> None:
        self.bind = bind
        self.host, port = bind.rsplit(":", 1)
        self.port = int(port)
        environment = dict(os.environ, TRELLIS_BIND=bind, TRELLIS_RATELIMIT="off")
        environment.update(env or {})
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "config.launcher"],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client().call("GET", "/_matrix/client/versions")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server did not start; see {log_path}") from None
                time.sleep(0.3)

    def cpu_seconds(self) -> float:
        """CPU time (user and system) used so far by the server's processes: those of its
        session (it was started in a new one), read from /proc; 0 where there is none."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            # After the command's closing parenthesis: state, ppid, pgrp, session, ...,
            # utime and stime as fields 14 and 15 of the whole line.
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[3]) == self.process.pid:
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def client(self, token: str | None = None) -> Client:
        return Client(self.host, self.port, token)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


class Client:
    """One keep-alive connection; ``call`` returns (status, body, milliseconds)."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port, self.token = host, port, token
        self.connection = http.client.HTTPConnection(host, port, timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        start = time.perf_counter()
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            raw = response.read()
        except (http.client.HTTPException, ConnectionError):
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
            raise
        elapsed = (time.perf_counter() - start) * 1000
        return response.status, json.loads(raw) if raw else None, elapsed

    def ok(self, method: str, path: str, body: Any = None) -> tuple[Any, float]:
        status, answer, elapsed = self.call(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer, elapsed


def login(server: Server, localpart: str, password: str) -> str:
    answer, _ = server.client().ok(
        "POST",
        f"{C}/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        },
    )
    return str(answer["access_token"])


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def room_path(room_id: str) -> str:
    return quote(room_id, safe="")
