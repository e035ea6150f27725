"""A small TES server on 127.0.0.1 for the CWL step command: records requests, answers scripted states.

Each task walks through `script` (one state per MINIMAL poll, the last one repeating); the FULL view
adds `logs`. `submit_answers` are given to the first submissions instead of accepting them (e.g. 503,
400). With `execute`, a task is run at submission by a function that returns (state, executor logs).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/ga4gh/tes/v1"
TOKEN = "t0ken"


@dataclass
class Task:
    body: dict[str, Any]
    script: list[str]
    logs: list[dict[str, Any]]
    system_logs: list[str]
    polls: int = 0
    cancelled: bool = False

    @property
    def state(self) -> str:
        if self.cancelled:
            return "CANCELED"
        return self.script[min(self.polls, len(self.script) - 1)]


@dataclass
class FakeTes:
    script: list[str] = field(default_factory=lambda: ["QUEUED", "RUNNING", "COMPLETE"])
    logs: list[dict[str, Any]] = field(default_factory=lambda: [{"exit_code": 0}])
    system_logs: list[str] = field(default_factory=list)
    submit_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    execute: Callable[[dict[str, Any]], tuple[str, list[dict[str, Any]]]] | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, authorization
    cancels: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    polled: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FakeTes:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                with fake.lock:
                    fake.requests.append((self.command, self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._answer(401, {"msg": "bad credentials", "status_code": 401})
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if not self._authorised():
                    return
                path = urlsplit(self.path).path
                if path == PREFIX + "/tasks":
                    with fake.lock:
                        if fake.submit_answers:
                            status, answer = fake.submit_answers.pop(0)
                            self._answer(status, answer)
                            return
                        task_id = f"task-{len(fake.tasks) + 1}"
                        script, logs = list(fake.script), [dict(x) for x in fake.logs]
                    if fake.execute is not None:
                        final, logs = fake.execute(body)
                        script = ["RUNNING", final]
                    with fake.lock:
                        fake.tasks[task_id] = Task(body, script, logs, list(fake.system_logs))
                    self._answer(200, {"id": task_id})
                elif path.startswith(PREFIX + "/tasks/") and path.endswith(":cancel"):
                    task_id = path[len(PREFIX + "/tasks/"): -len(":cancel")]
                    with fake.lock:
                        fake.cancels.append(task_id)
                        if task_id in fake.tasks:
                            fake.tasks[task_id].cancelled = True
                    self._answer(200, {})
                else:
                    self._answer(404, {"msg": "no such route", "status_code": 404})

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                parts = urlsplit(self.path)
                task_id = parts.path[len(PREFIX + "/tasks/"):]
                view = parse_qs(parts.query).get("view", ["MINIMAL"])[0]
                with fake.lock:
                    task = fake.tasks.get(task_id)
                    if task is None:
                        self._answer(404, {"msg": f"task {task_id} not found", "status_code": 404})
                        return
                    answer: dict[str, Any] = {"id": task_id, "state": task.state}
                    if view == "MINIMAL":
                        task.polls += 1
                        fake.polled.set()
                    if view == "FULL":
                        answer.update(task.body)
                        answer["logs"] = [{"logs": task.logs, "system_logs": task.system_logs, "outputs": []}]
                self._answer(200, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
