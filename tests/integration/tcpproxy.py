"""tcpproxy.py — a TCP forwarder on 127.0.0.1 that a test can cut and restore.

    proxy = TcpProxy(target_port)   # listens on 127.0.0.1:proxy.port
    proxy.cut()                     # stop forwarding: bytes stay in the kernel
                                    # buffers, nothing is closed, like a pulled cable
    proxy.restore()                 # forward again; what piled up (data, FIN) flows
    proxy.close()

While cut, new connections are accepted by the kernel but not connected
onwards, so a client trying to connect hangs as it would on a dead network.
One thread per direction per connection; blocking sockets; loopback only.
"""

import socket
import threading


class TcpProxy:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.lock = threading.Lock()
        self.socks = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self):
        self.flowing.clear()

    def restore(self):
        self.flowing.set()

    def close(self):
        self.closed = True
        self.flowing.set()
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
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self.lock:
                self.accepted += 1
                self.socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()  # what arrived during a cut is held until restored
                dst.sendall(data)
        except OSError:
            pass
        finally:
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
