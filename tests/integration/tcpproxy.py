"""tcpproxy.py — a TCP forwarder on 127.0.0.1 that a test can cut and restore.

    proxy = TcpProxy(target_port)   # listens on 127.0.0.1:proxy.port
    proxy.cut()                     # stop forwarding: bytes stay in the kernel
                                    # buffers, nothing is closed, like a pulled cable
    proxy.restore()                 # forward again; what piled up (data, FIN) flows
    proxy.blackhole()               # the connections open now go silent for good:
                                    # nothing forwarded, nothing closed (not even when
                                    # one end closes), until proxy.close(); new
                                    # connections are forwarded as usual
    proxy.close()

TcpProxy(target_port, rate=8e6) forwards at most `rate` bytes per second from
the target to each client, so a test can aim a fault at the middle of a large
transaction: the server's receive buffer on the proxy is then kept small
(RCVBUF), so little piles up between the server and the client.

While cut, new connections are accepted by the kernel but not connected
onwards, so a client trying to connect hangs as it would on a dead network.
One thread per direction per connection; blocking sockets; loopback only.
"""

import socket
import threading
import time

# With a rate cap: the proxy's receive buffer towards the server. Linux would
# otherwise grow it (up to net.ipv4.tcp_rmem's maximum, 32 MB here), and what
# it holds would still reach the client after a fault.
RATE_RCVBUF = 256 * 1024
RATE_CHUNK = 16 * 1024


class _Link:
    """One proxied connection."""

    def __init__(self):
        self.flowing = threading.Event()
        self.flowing.set()
        self.dead = False  # blackholed


class TcpProxy:
    def __init__(self, target_port, target_host="127.0.0.1", rate=None):
        self.target = (target_host, target_port)
        self.rate = rate
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.socks = []
        self.links = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self):
        self.flowing.clear()

    def restore(self):
        self.flowing.set()

    def blackhole(self):
        """Silence every connection open now, for good. Returns how many."""
        with self.lock:
            live = [l for l in self.links if not l.dead]
            for link in live:
                link.dead = True
                link.flowing.clear()
        return len(live)

    def close(self):
        self.closed = True
        self.closing.set()
        self.flowing.set()
        with self.lock:
            for link in self.links:
                link.flowing.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                _close(s)
            self.socks = []

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.flowing.wait()
            if self.closed:
                _close(client)
                return
            try:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if self.rate:
                    upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RATE_RCVBUF)
                upstream.settimeout(10)
                upstream.connect(self.target)
                upstream.settimeout(None)
            except OSError:
                _close(upstream)
                _close(client)
                continue
            link = _Link()
            with self.lock:
                self.accepted += 1
                self.socks += [client, upstream]
                self.links.append(link)
            threading.Thread(target=self._pump, args=(link, client, upstream, None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(link, upstream, client, self.rate),
                             daemon=True).start()

    def _wait(self, link):
        self.flowing.wait()
        link.flowing.wait()

    def _pump(self, link, src, dst, rate):
        next_at = time.monotonic()
        try:
            while True:
                self._wait(link)
                data = src.recv(RATE_CHUNK if rate else 65536)
                if not data:
                    break
                self._wait(link)  # what arrived during a cut is held until restored
                dst.sendall(data)
                if rate:
                    next_at = max(next_at, time.monotonic()) + len(data) / rate
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except OSError:
            pass
        finally:
            # A blackholed connection is never closed: its ends must notice
            # the silence by themselves.
            while link.dead and not self.closed:
                self.closing.wait()
            # One side gone: the other sees it as the end of the connection.
            _close(src)
            _close(dst)


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
