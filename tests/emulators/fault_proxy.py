"""An HTTP proxy that injects the faults AWS clients meet in production.

Between weir and the emulator it forwards every request, except that a share of them (seeded,
so runs repeat) get one of:

  throttle   the service's throttling error (HTTP 400 ThrottlingException for JSON protocols,
             Throttling for query protocols, 503 SlowDown for S3), not forwarded;
  error500   HTTP 500 InternalFailure, not forwarded;
  drop       the connection closed before the request is forwarded;
  lost       the request IS forwarded and applied, then the connection is closed before the
             answer: the client cannot know it succeeded, and retries it;
  partial    (DynamoDB BatchWriteItem, SNS PublishBatch, SQS SendMessageBatch) a 200 answer in
             which some entries failed: part of the batch is forwarded, the rest comes back as
             UnprocessedItems or as `Failed` entries (not the sender's fault, so retryable);
  reset      (S3 GetObject) the whole answer's headers, then half its body, then the
             connection closed: a reset in the middle of a download;
  slow       the request is held SLOW seconds (default 1.5), then forwarded and answered: a
             client whose attempt timeout is shorter gives up and retries, while the first
             attempt is still applied.

A fault that does not apply to a request (partial, reset) is replaced by one that does; and
the first request each of those two applies to gets it whatever the share, so that a short run
meets every kind. The
proxy rewrites the requests it forwards in part, so their signatures no longer match: the
emulator behind it must not check them (moto does not).

GET /__faults answers the counts so far, as JSON.

    python fault_proxy.py LISTEN_PORT UPSTREAM_PORT SHARE SEED [SLOW]
"""

import http.client
import json
import random
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

KINDS = ["throttle", "error500", "drop", "lost", "partial", "reset", "slow"]
ANY = ["throttle", "error500", "drop", "lost", "slow"]


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = 0
    share = 0.0
    rng = random.Random(0)
    lock = threading.Lock()
    counts = {k: 0 for k in KINDS + ["forwarded"]}
    ensure = {"partial", "reset"}

    def log_message(self, *args):  # quiet
        pass

    slow = 1.5

    def operation(self):
        """The batch operation or download this request is, if it is one a fault can split."""
        target = self.headers.get("X-Amz-Target") or ""
        if target.endswith(".BatchWriteItem"):
            return "BatchWriteItem"
        if target.endswith(".SendMessageBatch"):
            return "SendMessageBatch"
        if self.command == "GET" and "x-id=GetObject" in self.path:
            return "GetObject"
        return None

    def pick(self, body):
        op = self.operation()
        if op is None and b"Action=PublishBatch" in body:
            op = "PublishBatch"
        with Proxy.lock:
            kind = None
            if op in ("BatchWriteItem", "SendMessageBatch", "PublishBatch") and "partial" in Proxy.ensure:
                Proxy.ensure.discard("partial")
                kind = "partial"
            elif op == "GetObject" and "reset" in Proxy.ensure:
                kind = "reset"  # counted, and no longer ensured, once applied (a 200 with a body)
            elif Proxy.rng.random() < Proxy.share:
                kind = Proxy.rng.choice(KINDS)
                if kind == "partial" and op not in ("BatchWriteItem", "SendMessageBatch", "PublishBatch"):
                    kind = Proxy.rng.choice(ANY)
                if kind == "reset" and op != "GetObject":
                    kind = Proxy.rng.choice(ANY)
            if kind != "reset":
                Proxy.counts[kind or "forwarded"] += 1
            return kind, op, Proxy.rng.random()

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
        kind, op, coin = self.pick(body)
        if kind == "slow":
            time.sleep(Proxy.slow)
        if kind == "partial":
            return self.partial(op, body, coin)
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
        if kind == "reset" and not (resp.status == 200 and len(data) > 1):
            kind = None  # nothing to cut (a 404, an empty object): answered whole
            with Proxy.lock:
                Proxy.counts["forwarded"] += 1
        if kind == "reset":
            with Proxy.lock:
                Proxy.counts["reset"] += 1
                Proxy.ensure.discard("reset")
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "server", "date"):
                    self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
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

    def forward(self, body, content_type=None):
        """Forwards this request with `body`; (status, headers, data) of the answer."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive", "content-length")}
        headers["Content-Length"] = str(len(body))
        if content_type:
            headers["Content-Type"] = content_type
        conn = http.client.HTTPConnection("127.0.0.1", Proxy.upstream, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "application/octet-stream", resp.read()
        finally:
            conn.close()

    @staticmethod
    def split(entries, coin):
        """(forwarded, withheld): at least one entry withheld, about half."""
        n = len(entries)
        withheld = sorted({int(coin * n)} | {i for i in range(n) if (i * 7919 + int(coin * 1000)) % 2})
        keep = [e for i, e in enumerate(entries) if i not in withheld]
        return keep, [entries[i] for i in withheld]

    def partial(self, op, body, coin):
        """A 200 answer in which some entries of the batch failed, the others forwarded."""
        if op == "BatchWriteItem":
            request = json.loads(body)
            table, entries = next(iter(request["RequestItems"].items()))
            keep, withheld = self.split(entries, coin)
            answer = {"UnprocessedItems": {}}
            if keep:
                request["RequestItems"] = {table: keep}
                status, ctype, data = self.forward(json.dumps(request).encode())
                if status != 200:
                    return self.reply(status, data.decode(), ctype)
                answer = json.loads(data)
            unprocessed = answer.setdefault("UnprocessedItems", {})
            unprocessed.setdefault(table, []).extend(withheld)
            return self.reply(200, json.dumps(answer), "application/x-amz-json-1.0")
        if op == "SendMessageBatch":
            request = json.loads(body)
            keep, withheld = self.split(request["Entries"], coin)
            answer = {"Successful": [], "Failed": []}
            if keep:
                request["Entries"] = keep
                status, ctype, data = self.forward(json.dumps(request).encode())
                if status != 200:
                    return self.reply(status, data.decode(), ctype)
                answer = json.loads(data)
            answer.setdefault("Failed", []).extend(
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "fault proxy"} for e in withheld)
            return self.reply(200, json.dumps(answer), "application/x-amz-json-1.0")
        # SNS PublishBatch, query protocol: PublishBatchRequestEntries.member.N.<field>.
        pairs = parse_qsl(body.decode(), keep_blank_values=True)
        entry_re = re.compile(r"PublishBatchRequestEntries\.member\.(\d+)\.(.*)")
        members, other = {}, []
        for k, v in pairs:
            m = entry_re.fullmatch(k)
            if m:
                members.setdefault(int(m.group(1)), []).append((m.group(2), v))
            else:
                other.append((k, v))
        order = sorted(members)
        keep, withheld = self.split(order, coin)
        failed = "".join(
            f"<member><Id>{escape(dict(members[n])['Id'])}</Id><Code>InternalError</Code>"
            f"<Message>fault proxy</Message><SenderFault>false</SenderFault></member>" for n in withheld)
        if keep:
            renumbered = [(f"PublishBatchRequestEntries.member.{i}.{f}", v)
                          for i, n in enumerate(keep, 1) for f, v in members[n]]
            status, ctype, data = self.forward(urlencode(other + renumbered).encode(), "application/x-www-form-urlencoded")
            if status != 200:
                return self.reply(status, data.decode(), ctype)
            text = data.decode()
            if re.search(r"<Failed\s*/>", text):
                text = re.sub(r"<Failed\s*/>", f"<Failed>{failed}</Failed>", text, count=1)
            elif "</Failed>" in text:
                text = text.replace("</Failed>", failed + "</Failed>", 1)
            else:
                text = text.replace("</PublishBatchResult>", f"<Failed>{failed}</Failed></PublishBatchResult>", 1)
        else:
            text = ("<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult>"
                    f"<Successful/><Failed>{failed}</Failed></PublishBatchResult>"
                    "<ResponseMetadata><RequestId>fault-proxy</RequestId></ResponseMetadata></PublishBatchResponse>")
        return self.reply(200, text, "text/xml")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that gave up on a slow or lost answer (its attempt timed out) closes the
        connection under us: expected here, not worth a traceback per request."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main() -> None:
    listen, upstream, share, seed = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    Proxy.upstream, Proxy.share, Proxy.rng = upstream, share, random.Random(seed)
    if len(sys.argv) > 5:
        Proxy.slow = float(sys.argv[5])
    Server(("127.0.0.1", listen), Proxy).serve_forever()


if __name__ == "__main__":
    main()
