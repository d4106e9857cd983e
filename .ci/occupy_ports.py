"""Hold Madre's default ports (8001, and 8002-8008 of the modules) while the suite runs, with
servers that answer every request as a wrong service would (200, a JSON body of no use), so
a test that reached a default port instead of its own would fail. Prints "ready" once every
port it could take is bound; a port already taken by something else is left to it.

    python3 .ci/occupy_ports.py 8001 8008
"""

from __future__ import annotations

import http.server
import sys
import threading


class WrongService(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"occupied": "this is not the service a test should reach"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:  # quiet: CI's log is the suite's
        pass


def main(first: int, last: int) -> None:
    taken = []
    for port in range(first, last + 1):
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), WrongService)
        except OSError:
            continue
        threading.Thread(target=server.serve_forever, daemon=True).start()
        taken.append(port)
    print(f"ready: holding {taken}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
