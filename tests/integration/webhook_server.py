"""A webhook receiver for the tests (test_webhook.py, bench): a real HTTP/1.1
server on loopback (http.server's ThreadingHTTPServer, optionally TLS) that
records every request and can fail on purpose.

It behaves as the receiver the README describes: a batch whose
Idempotency-Key it already accepted is answered 200 and not applied again,
so `delivered()` is what a receiver that honours the key would hold. Every
request is recorded, whatever its fate: arrival time, key, signature (and
whether it verified), content type, body, status answered (None: the
connection was dropped without a reply).

Faults are queued with fail(...) and consumed one per request, or set for a
while with fail_for(seconds, status):
  ("status", code, headers, body)  answer code (e.g. 500, 429 with
                                   {"Retry-After": "1"}, 400) and do not apply
  ("slow", seconds)                apply, then answer 200 after `seconds`
  ("drop",)                        read the request, close without a reply
"""

import collections
import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    def __init__(self, secret=None, certfile=None, keyfile=None, path="/hook", port=0,
                 count_only=False, echo=None):
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.lock = threading.Lock()
        self.requests = []
        self.accepted_keys = {}
        self.batches = []  # (key, events) of every batch applied, in order
        self.plan = collections.deque()
        self.failing_until = 0.0
        self.failing_status = 500
        # count_only (the benchmark's receiver): count the changes in each
        # body, keep nothing; GET answers {"changes": N, "requests": M}.
        self.count_only = count_only
        self.echo = echo  # count_only: a binary file each body is written to
        self.counts = {"changes": 0, "requests": 0}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # A reply is written as headers, then body: with Nagle the body
            # would wait for the client's delayed ACK (40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                if server.count_only:
                    server._count(self)
                else:
                    server._handle(self)

            def do_GET(self):
                with server.lock:
                    body = json.dumps(server.counts).encode()
                server._reply(self, 200, {"Content-Type": "application/json"}, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certfile, keyfile)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.port = self.httpd.server_address[1]
        self.url = "%s://127.0.0.1:%d%s" % (scheme, self.port, path)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # ---- faults ------------------------------------------------------------

    def fail(self, *actions):
        with self.lock:
            self.plan.extend(actions)

    def fail_for(self, seconds, status=500):
        with self.lock:
            self.failing_status = status
            self.failing_until = time.time() + seconds

    def heal(self):
        with self.lock:
            self.plan.clear()
            self.failing_until = 0.0

    # ---- what arrived --------------------------------------------------------

    def delivered(self):
        """The events of every batch applied, in order (each key once)."""
        with self.lock:
            return [e for _, events in self.batches for e in events]

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- serving ---------------------------------------------------------------

    CHANGES = (b'"op":"insert"', b'"op":"update"', b'"op":"delete"')

    def _count(self, h):
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        n = sum(body.count(c) for c in self.CHANGES)
        with self.lock:
            self.counts["changes"] += n
            self.counts["requests"] += 1
            if self.echo:
                self.echo.write(body)
                self.echo.flush()
        self._reply(h, 200, {}, b"ok")

    def _handle(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        key = h.headers.get("Idempotency-Key")
        sig = h.headers.get("X-Pgstream-Signature")
        rec = {"t": time.time(), "key": key, "sig": sig, "body": body,
               "ctype": h.headers.get("Content-Type"),
               "count": h.headers.get("Pgstream-Events"), "status": None,
               "headers": dict(h.headers),
               "verified": None}
        if self.secret is not None:
            want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            rec["verified"] = sig is not None and hmac.compare_digest(sig, want)
        with self.lock:
            self.requests.append(rec)
            action = self.plan.popleft() if self.plan else None
            if action is None and time.time() < self.failing_until:
                action = ("status", self.failing_status, {}, b"failing on purpose")
        if action and action[0] == "drop":
            h.close_connection = True
            return
        if action and action[0] == "status":
            _, code, headers, reply = action
            rec["status"] = code
            self._reply(h, code, headers, reply)
            return
        # Apply, honouring the key: a batch seen before is not applied again.
        with self.lock:
            if key not in self.accepted_keys:
                self.accepted_keys[key] = len(self.batches)
                self.batches.append((key, parse_body(body, rec["ctype"])))
                rec["applied"] = True
        if action and action[0] == "slow":
            time.sleep(action[1])
        rec["status"] = 200
        self._reply(h, 200, {}, b"ok")

    @staticmethod
    def _reply(h, code, headers, body):
        try:
            h.send_response(code)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass  # the client gave up (a timeout on purpose)


def parse_body(body, ctype):
    if ctype == "application/json":
        return json.loads(body)
    return [json.loads(line) for line in body.split(b"\n") if line]


def main():
    """Run the receiver on its own, printing one line per batch applied:
    python3 tests/integration/webhook_server.py [--port N] [--secret S]"""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--secret")
    ap.add_argument("--count", action="store_true",
                    help="only count the changes (GET answers the count); print nothing more")
    ap.add_argument("--echo", action="store_true",
                    help="with --count: print every body as it is answered")
    args = ap.parse_args()
    import sys
    server = WebhookServer(secret=args.secret, port=args.port, count_only=args.count,
                           echo=sys.stdout.buffer if args.echo else None)
    print("listening on %s" % server.url, flush=True)
    if args.count:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.close()
        return
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            with server.lock:
                new = server.batches[seen:]
                reqs = {r["key"]: r for r in server.requests}
            for key, events in new:
                r = reqs.get(key, {})
                print("batch %s: %d events, signature %s" % (
                    key, len(events), {True: "ok", False: "BAD", None: "not checked"}[
                        r.get("verified")]), flush=True)
            seen += len(new)
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
