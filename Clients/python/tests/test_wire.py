"""Tests of framing, the handshake and request/response matching, against the
scripted fake daemon (no plinthd needed)."""

import io
import os
import socket
import tempfile
import time

import pytest

import plinth
from plinth._proto.plinth.v1 import admin_pb2, common_pb2
from plinth._wire import (
    Connection, FrameTooLarge, encode_frame, parse_address, read_frame,
)

from fake_daemon import Fake, ok, status

HEALTH = "/plinth.v1.Admin/Health"
SERVING = admin_pb2.HealthResponse(status=admin_pb2.HealthResponse.SERVING).SerializeToString()


def test_frame_is_big_endian_length_then_payload():
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    stream = io.BytesIO(encode_frame(b"x" * 300) + encode_frame(b"yz"))
    assert read_frame(stream, 1000) == b"x" * 300
    assert read_frame(stream, 1000) == b"yz"
    with pytest.raises(EOFError):
        read_frame(stream, 1000)


def test_read_frame_rejects_oversized_and_truncated_frames():
    with pytest.raises(FrameTooLarge) as caught:
        read_frame(io.BytesIO(b"\x01\x00\x00\x00"), 1000)
    assert caught.value.length == 1 << 24
    with pytest.raises(EOFError):
        read_frame(io.BytesIO(b"\x00\x00\x00\x05ab"), 1000)


@pytest.mark.parametrize(
    "address,expected",
    [
        ("127.0.0.1:7433", (socket.AF_INET, ("127.0.0.1", 7433))),
        ("localhost", (socket.AF_INET, ("localhost", 7433))),
        ("[::1]:9000", (socket.AF_INET6, ("::1", 9000))),
        ("[::1]", (socket.AF_INET6, ("::1", 7433))),
        ("unix:/run/plinth.sock", (socket.AF_UNIX, "/run/plinth.sock")),
    ],
)
def test_parse_address(address, expected):
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["host:0", "host:99999", "host:http", ":7433", "unix:", "[::1"])
def test_bad_addresses_are_invalid_argument(address):
    with pytest.raises(plinth.InvalidArgumentError):
        parse_address(address)


@pytest.fixture
def fake():
    server = Fake()
    yield server
    server.close()


@pytest.fixture
def connect(fake):
    """Opens connections to the fake and closes them at teardown."""
    made = []

    def make(token="t0k", timeout=5.0):
        made.append(Connection(fake.address, token, "tests", timeout, 5.0))
        return made[-1]

    yield make
    for conn in made:
        conn.close()


def test_hello_comes_first_with_version_token_and_name(fake, connect):
    conn = connect()
    first = fake.requests[0]
    assert first.method == "/plinth.v1.Admin/Hello" and first.id != 0
    hello = admin_pb2.HelloRequest.FromString(first.body)
    assert (hello.protocol_version, hello.token, hello.client_name) == (1, "t0k", "tests")
    assert conn.hello.server_version == "fake"
    conn.close()


def test_hello_failure_raises_its_status():
    server = Fake(token="right")
    try:
        with pytest.raises(plinth.UnauthenticatedError) as caught:
            Connection(server.address, "wrong", "tests", 5.0, 5.0)
        assert caught.value.code == 16 and caught.value.code_name == "UNAUTHENTICATED"
    finally:
        server.close()


def test_ids_are_unique_and_nonzero(fake, connect):
    fake.methods[HEALTH] = lambda r: SERVING
    conn = connect()
    for _ in range(3):
        conn.call(HEALTH, b"")
    ids = [r.id for r in fake.requests]
    assert 0 not in ids and len(set(ids)) == len(ids)


def test_out_of_order_responses_are_matched_by_id(fake, connect):
    held = []

    def reverse(request):
        # Hold every answer until the third request, then answer newest first.
        held.append(ok(request, request.body[::-1]))
        if len(held) < 3:
            return []
        answers = held[::-1]
        held.clear()
        return answers

    fake.handler = reverse
    conn = connect()
    assert conn.call_many([(HEALTH, b"ab"), (HEALTH, b"cd"), (HEALTH, b"ef")]) == [b"ba", b"dc", b"fe"]


def test_streamed_frames_are_joined_until_more_is_false(fake, connect):
    fake.handler = lambda r: [ok(r, b"one-", more=True), ok(r, b"two-", more=True), ok(r, b"three")]
    conn = connect()
    assert conn.call(HEALTH, b"") == b"one-two-three"


def test_drip_fed_bytes_still_make_whole_frames(fake, connect):
    fake.methods[HEALTH] = lambda r: SERVING
    fake.drip = True
    conn = connect()
    assert conn.call(HEALTH, b"") == SERVING


def test_error_status_raises_subclass_and_keeps_connection(fake, connect):
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return [status(request.id, 5, "no such view 'nope'")]
        return [ok(request, b"fine")]

    fake.handler = handler
    conn = connect()
    with pytest.raises(plinth.NotFoundError) as caught:
        conn.call(HEALTH, b"")
    assert (caught.value.code, caught.value.message) == (5, "no such view 'nope'")
    assert not conn.closed
    assert conn.call(HEALTH, b"") == b"fine"


def test_failed_stream_is_drained(fake, connect):
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return [ok(request, b"part", more=True),
                    common_pb2.Response(id=request.id, status=common_pb2.Status(code=13, message="boom"), more=True),
                    ok(request, b"tail")]
        return [ok(request, b"next")]

    fake.handler = handler
    conn = connect()
    with pytest.raises(plinth.InternalError):
        conn.call(HEALTH, b"")
    assert conn.call(HEALTH, b"") == b"next"


def test_pipelined_failure_reads_every_reply_and_raises_the_first(fake, connect):
    def handler(request):
        if request.body in (b"2", b"3"):
            return [status(request.id, 3 if request.body == b"2" else 7, "bad " + request.body.decode())]
        return [ok(request, request.body)]

    fake.handler = handler
    conn = connect()
    with pytest.raises(plinth.InvalidArgumentError) as caught:
        conn.call_many([(HEALTH, b"%d" % i) for i in range(1, 6)], window=2)
    assert caught.value.message == "bad 2"
    assert conn.call(HEALTH, b"7") == b"7"


def test_connection_level_error_closes(fake, connect):
    fake.handler = lambda r: [common_pb2.Response(id=0, status=common_pb2.Status(code=8, message="frame too large"))]
    conn = connect()
    with pytest.raises(plinth.ResourceExhaustedError) as caught:
        conn.call(HEALTH, b"")
    assert "frame too large" in caught.value.message
    assert conn.closed
    with pytest.raises(plinth.UnavailableError):
        conn.call(HEALTH, b"")


def test_server_hanging_up_is_unavailable(fake, connect):
    fake.handler = lambda r: None
    conn = connect()
    with pytest.raises(plinth.UnavailableError):
        conn.call(HEALTH, b"")
    assert conn.closed


def test_no_reply_within_timeout_is_deadline_exceeded(fake, connect):
    fake.handler = lambda r: []
    conn = connect(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(plinth.DeadlineExceededError):
        conn.call(HEALTH, b"")
    assert time.monotonic() - started < 3
    assert conn.closed


def test_request_over_the_servers_max_frame_is_refused_before_sending(fake, connect):
    fake.max_frame_bytes = 100
    conn = connect()
    sent = len(fake.requests)
    with pytest.raises(plinth.ResourceExhaustedError):
        conn.call_many([(HEALTH, b""), (HEALTH, b"x" * 200)])
    assert len(fake.requests) == sent
    assert not conn.closed


def test_unreachable_address_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(plinth.UnavailableError):
        Connection("127.0.0.1:%d" % port, None, "tests", 1.0, 1.0)


def test_unix_socket_address():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "p.sock")
        server = Fake(unix_path=path)
        try:
            server.methods[HEALTH] = lambda r: SERVING
            with plinth.Client("unix:" + path) as client:
                assert client.health() == "SERVING"
        finally:
            server.close()


def test_an_interrupted_call_closes_the_connection(fake, connect, monkeypatch):
    fake.methods[HEALTH] = lambda r: SERVING
    conn = connect()

    def interrupted(request_id):
        raise KeyboardInterrupt

    monkeypatch.setattr(conn, "_receive", interrupted)
    with pytest.raises(KeyboardInterrupt):
        conn.call(HEALTH, b"")
    assert conn.closed
