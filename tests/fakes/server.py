"""A stand-in for an OpenAI-compatible server, run as a command by the ManagedServer tests.

``python tests/fakes/server.py --port N [options]`` serves ``GET /health`` (503 until
``--ready-after-s`` seconds have passed, then 200) and ``GET /metrics`` (the text of
``--metrics-file``, re-read on every request). Options: ``--child`` starts a child process
(a sleeper in the server's process group); ``--ignore-term`` makes the server (and its
child) ignore SIGTERM, ``--child-ignores-term`` only the child; ``--exit-code C`` makes it
print a few lines and exit with C during start-up, before it listens. It prints
``server pid=<pid> child=<pid>`` once listening. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_SLEEPER = "import signal, sys, time\n{ignore}time.sleep(120)\n"
_IGNORE = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ready-after-s", type=float, default=0.0)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--child-ignores-term", action="store_true")
    parser.add_argument("--exit-code", type=int, default=None)
    parser.add_argument("--metrics-file", type=Path, default=None)
    args = parser.parse_args()

    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.exit_code is not None:
        for index in range(8):
            print(f"start-up line {index}", flush=True)
        print("fatal: cannot load the model", file=sys.stderr, flush=True)
        return int(args.exit_code)

    child_pid = None
    if args.child:
        ignores = args.ignore_term or args.child_ignores_term
        code = _SLEEPER.format(ignore=_IGNORE if ignores else "")
        child_pid = subprocess.Popen([sys.executable, "-c", code]).pid

    ready_at = time.monotonic() + args.ready_after_s
    metrics_file = args.metrics_file

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                status, body = (200, b"ok") if time.monotonic() >= ready_at else (503, b"wait")
            elif self.path == "/metrics" and metrics_file is not None:
                status, body = 200, metrics_file.read_bytes()
            else:
                status, body = 404, b"not found"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            print("request", format % args, flush=True)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"server pid={os.getpid()} child={child_pid}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
