"""A chat webhook on loopback for the alert tests: a real HTTP server that records each POST.

`webhook.answer` sets how it answers: "ok" (200), "error" (500), "redirect" (301 to another path),
"garbage" (bytes that are not HTTP), "drip" (a status line sent a byte every 0.3 s, never finished) or
"hang" (takes the request and never answers); "drip" and "hang" hold on until the test ends. `stop()`
closes its port, as a webhook that is down; `start()` opens the same port again.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    def __init__(self) -> None:
        self.answer = "ok"
        self.received: list[dict] = []  # the JSON of every POST answered with 200, in order
        self.requests = 0  # every POST that reached the server, however it was answered
        self.hanging = threading.Event()  # set once a request is being held without an answer
        self.release = threading.Event()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/secret-token"

    @property
    def texts(self) -> list[str]:
        return [message["text"] for message in self.received]

    def start(self) -> None:
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                webhook.requests += 1
                if webhook.answer == "hang":
                    webhook.hanging.set()
                    webhook.release.wait(120)
                    return
                if webhook.answer == "error":
                    self.send_error(500, "webhook broken")
                    return
                if webhook.answer == "redirect":
                    self.send_response(301)
                    self.send_header("Location", "/moved")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if webhook.answer == "garbage":
                    self.wfile.write(b"\x00\x01 not http at all\r\n\r\n")
                    return
                if webhook.answer == "drip":
                    webhook.hanging.set()
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 1000:
                        if webhook.release.wait(0.3):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                webhook.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                webhook.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
