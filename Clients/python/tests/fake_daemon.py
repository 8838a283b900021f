"""A scripted stand-in for plinthd that speaks the frame protocol, for tests
of the client's framing, pipelining and encoding without a real daemon.

Each connection is served by a thread that reads Request frames and asks
`handler(request)` for the Response frames to send back (a list, sent in
that order, so a test can reorder, split or drop them). `Fake.requests`
keeps every decoded Request, so a test can check exactly what the client
sent. A handler raising `Reply` answers with that status.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable, Dict, List, Optional

from plinth._proto.plinth.v1 import admin_pb2, common_pb2
from plinth._wire import encode_frame, read_frame


class Reply(Exception):
    """Raised by a method handler to answer with a non-OK status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ok(request: common_pb2.Request, body: bytes = b"", more: bool = False) -> common_pb2.Response:
    return common_pb2.Response(id=request.id, body=body, more=more)


def status(request_id: int, code: int, message: str) -> common_pb2.Response:
    return common_pb2.Response(id=request_id, status=common_pb2.Status(code=code, message=message))


class Fake:
    """A listening fake daemon on 127.0.0.1 (or a Unix socket path)."""

    def __init__(self, unix_path: Optional[str] = None, token: Optional[str] = None) -> None:
        self.methods: Dict[str, Callable[[common_pb2.Request], bytes]] = {}
        # Replaces the per-method dispatch when set: full control of frames.
        self.handler: Optional[Callable[[common_pb2.Request], List[common_pb2.Response]]] = None
        self.requests: List[common_pb2.Request] = []
        self.token = token
        self.drip = False  # send responses one byte at a time
        self.max_frame_bytes = 16 * 1024 * 1024
        if unix_path:
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(unix_path)
            self.address = "unix:" + unix_path
        else:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind(("127.0.0.1", 0))
            self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._listener.listen(8)
        self._connections: List[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def method_names(self) -> List[str]:
        return [r.method for r in self.requests]

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone
        # would leave the socket listening until accept() returned.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=5)
        self.drop_connections()

    def drop_connections(self) -> None:
        """Hang up on every client, as a restarting daemon would."""
        for conn in self._connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._connections.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb")
        try:
            while True:
                try:
                    request = common_pb2.Request.FromString(read_frame(rfile, 1 << 30))
                except (EOFError, OSError):
                    return
                self.requests.append(request)
                responses = self._answer(request)
                if responses is None:  # the script says: hang up
                    return
                try:
                    for response in responses:
                        frame = encode_frame(response.SerializeToString())
                        if self.drip:
                            for i in range(len(frame)):
                                conn.sendall(frame[i: i + 1])
                        else:
                            conn.sendall(frame)
                except OSError:  # the client hung up first
                    return
        finally:
            rfile.close()
            conn.close()

    def _answer(self, request: common_pb2.Request) -> Optional[List[common_pb2.Response]]:
        if request.method == "/plinth.v1.Admin/Hello":
            hello = admin_pb2.HelloRequest.FromString(request.body)
            if self.token is not None and hello.token != self.token:
                return [status(request.id, 16, "invalid token")]
            answer = admin_pb2.HelloResponse(
                protocol_version=1, server_version="fake", scopes=["read", "write", "admin"],
                max_frame_bytes=self.max_frame_bytes,
            )
            return [ok(request, answer.SerializeToString())]
        if self.handler is not None:
            return self.handler(request)
        method = self.methods.get(request.method)
        if method is None:
            return [status(request.id, 12, "unknown method %s" % request.method)]
        try:
            return [ok(request, method(request))]
        except Reply as reply:
            return [status(request.id, reply.code, reply.message)]
