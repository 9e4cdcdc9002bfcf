"""An HTTP proxy that injects the faults AWS clients meet in production.

Between weir and the emulator it forwards every request, except that a share of them (seeded,
so runs repeat) get one of:

  throttle   the service's throttling error (HTTP 400 ThrottlingException for JSON protocols,
             Throttling for query protocols, 503 SlowDown for S3), not forwarded;
  error500   HTTP 500 InternalFailure, not forwarded;
  drop       the connection closed before the request is forwarded;
  lost       the request IS forwarded and applied, then the connection is closed before the
             answer: the client cannot know it succeeded, and retries it.

GET /__faults answers the counts so far, as JSON.

    python fault_proxy.py LISTEN_PORT UPSTREAM_PORT SHARE SEED
"""

import http.client
import json
import random
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ["throttle", "error500", "drop", "lost"]


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = 0
    share = 0.0
    rng = random.Random(0)
    lock = threading.Lock()
    counts = {k: 0 for k in KINDS + ["forwarded"]}

    def log_message(self, *args):  # quiet
        pass

    def pick(self):
        with Proxy.lock:
            if Proxy.rng.random() < Proxy.share:
                kind = Proxy.rng.choice(KINDS)
            else:
                kind = None
            Proxy.counts[kind or "forwarded"] += 1
            return kind

    def reply(self, status, body, content_type):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "fault-proxy")
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def throttle(self):
        if self.headers.get("X-Amz-Target"):
            self.reply(400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded (fault proxy)"}),
                       "application/x-amz-json-1.0")
        elif "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            self.reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
                            "<Message>Rate exceeded (fault proxy)</Message></Error>"
                            "<RequestId>fault-proxy</RequestId></ErrorResponse>", "text/xml")
        else:
            self.reply(503, "<Error><Code>SlowDown</Code><Message>Reduce your request rate (fault proxy)"
                            "</Message></Error>", "application/xml")

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path == "/__faults":
            self.reply(200, json.dumps(Proxy.counts), "application/json")
            return
        kind = self.pick()
        if kind == "throttle":
            return self.throttle()
        if kind == "error500":
            if self.headers.get("X-Amz-Target"):
                return self.reply(500, json.dumps({"__type": "InternalServerError", "message": "fault proxy"}),
                                  "application/x-amz-json-1.0")
            return self.reply(500, "<Error><Code>InternalError</Code><Message>fault proxy</Message></Error>",
                              "application/xml")
        if kind == "drop":
            return self.drop()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        conn = http.client.HTTPConnection("127.0.0.1", Proxy.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if kind == "lost":
            return self.drop()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(k, v)
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = handle_any


def main() -> None:
    listen, upstream, share, seed = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    Proxy.upstream, Proxy.share, Proxy.rng = upstream, share, random.Random(seed)
    server = ThreadingHTTPServer(("127.0.0.1", listen), Proxy)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
