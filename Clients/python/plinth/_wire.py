"""The Plinth wire protocol: frames, the Hello handshake, requests by id.

A frame is a 4-byte big-endian unsigned length N, then N bytes of protobuf: a
`plinth.v1.Request` from the client, a `plinth.v1.Response` from the server.
Responses carry the request's id and may come out of order; a request whose
result is streamed gets several frames, all but the last with `more` set. A
Response with id 0 is a connection-level error, after which the server closes
the connection.

`Connection` is blocking and not thread safe: the `Client` serialises calls
with a lock. Any transport failure closes the connection, because after a
timeout or a short read the byte stream can no longer be trusted to start at
a frame boundary; the client opens a new one on its next call.
"""

from __future__ import annotations

import socket
import struct
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import errors
from ._proto.plinth.v1 import admin_pb2, common_pb2

PROTOCOL_VERSION = 1
DEFAULT_PORT = 7433
#: What the server accepts unless its Hello says otherwise.
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
#: The largest frame the client reads; a larger length prefix means the
#: stream is broken (or is not Plinth), not that a result is that big.
MAX_RECEIVE_BYTES = 1 << 30

_LENGTH = struct.Struct(">I")

HELLO = "/plinth.v1.Admin/Hello"


def encode_frame(payload: bytes) -> bytes:
    """One frame: the big-endian length of `payload`, then `payload`."""
    if len(payload) > 0xFFFFFFFF:
        raise errors.ResourceExhaustedError("frame of %d bytes is too large" % len(payload))
    return _LENGTH.pack(len(payload)) + payload


class FrameTooLarge(Exception):
    """A length prefix above the reader's limit."""

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def read_frame(rfile, limit: int) -> bytes:
    """The payload of the next frame from a buffered binary file.

    Raises EOFError when the stream ends (cleanly or inside a frame) and
    FrameTooLarge, reading nothing more, for a length above `limit`.
    """
    header = rfile.read(4)
    if len(header) < 4:
        raise EOFError
    (length,) = _LENGTH.unpack(header)
    if length > limit:
        raise FrameTooLarge(length)
    payload = rfile.read(length)
    if len(payload) < length:
        raise EOFError
    return payload


def parse_address(address: str) -> Tuple[int, object]:
    """Socket family and address for "host:port", "[v6]:port", "host" (port
    7433) or "unix:/path/to.sock"."""
    if address.startswith("unix:"):
        path = address[len("unix:"):]
        if not path:
            raise errors.InvalidArgumentError("empty unix socket path in address %r" % address)
        return socket.AF_UNIX, path
    host, port = address, DEFAULT_PORT
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise errors.InvalidArgumentError("bad address %r: missing ']'" % address)
        host, rest = address[1:end], address[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise errors.InvalidArgumentError("bad address %r" % address)
            port = _port(address, rest[1:])
    elif address.count(":") == 1:
        host, port_text = address.split(":")
        port = _port(address, port_text)
    if not host:
        raise errors.InvalidArgumentError("bad address %r: no host" % address)
    return socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port)


def _port(address: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise errors.InvalidArgumentError("bad port in address %r" % address)
    return port


class Connection:
    """One open connection to plinthd, after a successful Hello."""

    def __init__(
        self,
        address: str,
        token: Optional[str],
        client_name: str,
        timeout: Optional[float],
        connect_timeout: Optional[float],
    ) -> None:
        self.address = address
        self._next_id = 1
        # Frames that arrived for other ids while waiting for one (pipelining).
        self._pending: Dict[int, List[common_pb2.Response]] = {}
        self._sock = _open_socket(address, connect_timeout)
        self._sock.settimeout(timeout)
        self._rfile = self._sock.makefile("rb")
        self.max_frame_bytes = DEFAULT_MAX_FRAME_BYTES
        hello = admin_pb2.HelloRequest(
            protocol_version=PROTOCOL_VERSION, token=token or "", client_name=client_name
        )
        try:
            body = self.call(HELLO, hello.SerializeToString())
        except BaseException:
            self.close()
            raise
        self.hello = admin_pb2.HelloResponse.FromString(body)
        if self.hello.max_frame_bytes:
            self.max_frame_bytes = self.hello.max_frame_bytes

    @property
    def closed(self) -> bool:
        return self._sock is None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                self._rfile.close()
            finally:
                sock.close()

    def call(self, method: str, body: bytes) -> bytes:
        """Send one request and return its (possibly merged) response body."""
        return self.call_many([(method, body)])[0]

    def call_stream(
        self, method: str, body: bytes, on_frame: Optional[Callable[[bytes], None]] = None
    ) -> List[bytes]:
        """Send one request and return the body of each frame of its
        (streamed) answer, in order, unmerged: for answers whose frames are
        separate messages (GetHistoricalFeatures chunks, Materialize
        progress). `on_frame` sees each body as it arrives."""
        request_id, frame = self._frame(method, body)
        try:
            self._send(frame)
            return self._receive_frames(request_id, on_frame)
        except errors.PlinthError:
            raise
        except BaseException:
            self.close()
            raise

    def call_many(self, calls: Sequence[Tuple[str, bytes]], window: int = 8) -> List[bytes]:
        """Pipeline `calls`, at most `window` in flight, and return their
        bodies in order. Every reply is read even when one fails, so that the
        connection stays usable; the first failure (by call order) is raised."""
        # Encode (and size-check) every request before sending any, so that a
        # request too large for the server fails with nothing half-sent.
        frames = [self._frame(method, body) for method, body in calls]
        try:
            return self._pipeline(frames, window)
        except errors.PlinthError:
            raise  # statuses leave the stream in step; transport errors closed it
        except BaseException:
            # Interrupted (e.g. KeyboardInterrupt) mid-frame: the stream can no
            # longer be trusted to start at a frame boundary.
            self.close()
            raise

    def _pipeline(self, frames: List[Tuple[int, bytes]], window: int) -> List[bytes]:
        results: List[Optional[bytes]] = [None] * len(frames)
        failures: List[Tuple[int, errors.PlinthError]] = []
        in_flight: List[Tuple[int, int]] = []  # (call index, request id)
        for index, (request_id, frame) in enumerate(frames):
            self._send(frame)
            in_flight.append((index, request_id))
            if len(in_flight) >= window:
                self._collect(in_flight.pop(0), results, failures)
        for item in in_flight:
            self._collect(item, results, failures)
        if failures:
            raise min(failures, key=lambda f: f[0])[1]
        return results  # type: ignore[return-value]

    def _collect(self, item, results, failures) -> None:
        index, request_id = item
        try:
            results[index] = self._receive(request_id)
        except errors.PlinthError as error:
            if self.closed:
                raise
            failures.append((index, error))

    def _frame(self, method: str, body: bytes) -> Tuple[int, bytes]:
        request_id = self._next_id
        self._next_id += 1
        payload = common_pb2.Request(id=request_id, method=method, body=body).SerializeToString()
        if len(payload) > self.max_frame_bytes:
            raise errors.ResourceExhaustedError(
                "request of %d bytes exceeds the server's max frame of %d bytes"
                % (len(payload), self.max_frame_bytes)
            )
        return request_id, encode_frame(payload)

    def _send(self, frame: bytes) -> None:
        if self._sock is None:
            raise errors.UnavailableError("connection to %s is closed" % self.address)
        try:
            self._sock.sendall(frame)
        except OSError as error:
            if not isinstance(error, socket.timeout):
                self._raise_parting_error(error)
            self._fail(error)

    def _raise_parting_error(self, error: OSError) -> None:
        """After a failed send, raise the connection-level error the server
        sent before hanging up (e.g. a frame over its limit), if it sent one:
        that says why, where the reset alone does not."""
        try:
            self._sock.settimeout(0.5)  # type: ignore[union-attr]
            response = common_pb2.Response.FromString(read_frame(self._rfile, MAX_RECEIVE_BYTES))
        except Exception:  # nothing (readable) was sent: report the send failure
            return
        if response.id == 0 and response.HasField("status") and response.status.code:
            self.close()
            raise errors.error_for(response.status.code, response.status.message) from error

    def _receive(self, request_id: int) -> bytes:
        """Read frames until the last one for `request_id`; merge their bodies.

        A streamed result's frames each hold part of one response message;
        protobuf parsing of concatenated encodings merges them (repeated
        fields append), so joining the bodies yields the whole result.
        """
        return b"".join(self._receive_frames(request_id))

    def _receive_frames(
        self, request_id: int, on_frame: Optional[Callable[[bytes], None]] = None
    ) -> List[bytes]:
        """The bodies of every frame for `request_id`, in order, through the
        last one; an error status is raised after draining the stream."""
        parts: List[bytes] = []
        while True:
            response = self._next_for(request_id)
            if response.HasField("status") and response.status.code != 0:
                error = errors.error_for(response.status.code, response.status.message)
                # Drain the rest of a failed stream so the next call starts clean.
                while response.more:
                    response = self._next_for(request_id)
                raise error
            parts.append(response.body)
            if on_frame is not None:
                on_frame(response.body)
            if not response.more:
                return parts

    def _next_for(self, request_id: int) -> common_pb2.Response:
        """The next frame for `request_id`; frames for other ids are kept."""
        while True:
            queue = self._pending.get(request_id)
            if queue:
                response = queue.pop(0)
                if not queue:
                    del self._pending[request_id]
                return response
            response = self._read_response()
            if response.id == request_id:
                return response
            self._pending.setdefault(response.id, []).append(response)

    def _read_response(self) -> common_pb2.Response:
        if self._sock is None:
            raise errors.UnavailableError("connection to %s is closed" % self.address)
        try:
            payload = read_frame(self._rfile, MAX_RECEIVE_BYTES)
        except EOFError:
            self.close()
            raise errors.UnavailableError("connection to %s closed by the server" % self.address)
        except FrameTooLarge as error:
            self.close()
            raise errors.InternalError(
                "server sent a frame of %d bytes; the stream is broken" % error.length
            )
        except OSError as error:
            self._fail(error)
        try:
            response = common_pb2.Response.FromString(payload)
        except Exception as error:  # protobuf's DecodeError, by implementation
            self.close()
            raise errors.InternalError("server sent a frame that does not decode: %s" % error)
        if response.id == 0:
            # A connection-level error: the server closes the connection.
            self.close()
            code = response.status.code if response.HasField("status") else 2
            raise errors.error_for(code or 2, response.status.message or "connection-level error")
        return response

    def _fail(self, error: OSError) -> None:
        self.close()
        if isinstance(error, socket.timeout):
            raise errors.DeadlineExceededError(
                "no reply from %s within the timeout" % self.address
            ) from error
        raise errors.UnavailableError("connection to %s failed: %s" % (self.address, error)) from error


def _open_socket(address: str, timeout: Optional[float]) -> socket.socket:
    family, target = parse_address(address)
    try:
        if family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(target)
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection(target, timeout=timeout)  # type: ignore[arg-type]
    except OSError as error:
        raise errors.UnavailableError("cannot connect to %s: %s" % (address, error)) from error
    # Requests are small and latency-bound: do not wait to coalesce them.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
