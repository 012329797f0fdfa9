"""The gateway watch's stream parser, without etcd: chunks and messages do not line up.

etcd's gateway writes one JSON message per line inside HTTP chunked encoding, but a
chunk boundary may fall inside a message, or one chunk may carry several.
"""

from __future__ import annotations

import json

import pytest

from harunner.store.etcd.gateway import (
    EtcdGateway,
    EtcdUnavailable,
    GatewayWatch,
    WatchCompacted,
    b64,
    prefix_end,
)


def parser() -> GatewayWatch:
    """A GatewayWatch with no socket, past its response headers."""
    watch = GatewayWatch.__new__(GatewayWatch)
    watch._raw, watch._body = bytearray(), bytearray()
    watch._headers_done, watch.created = False, False
    watch._raw += b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    return watch


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def message(*revisions: int) -> bytes:
    events = [{"kv": {"key": b64(b"k"), "value": b64(b"%d" % r), "mod_revision": str(r)}}
              for r in revisions]
    return json.dumps({"result": {"header": {}, "events": events}}).encode() + b"\n"


def test_a_message_split_across_chunks_is_parsed_once_whole():
    watch = parser()
    body = message(5, 6)
    watch._raw += chunk(body[:7])
    assert watch._drain() == []
    watch._raw += chunk(body[7:20]) + chunk(body[20:])[:-1]     # last chunk incomplete
    assert watch._drain() == []
    watch._raw += b"\n"
    assert [e.mod_revision for e in watch._drain()] == [5, 6]


def test_several_messages_in_one_chunk_all_come_out_in_order():
    watch = parser()
    created = json.dumps({"result": {"created": True}}).encode() + b"\n"
    watch._raw += chunk(created + message(1) + message(2, 3) + b"\n")
    assert [e.mod_revision for e in watch._drain()] == [1, 2, 3]
    assert watch.created


def test_compaction_and_end_of_stream_are_errors_not_silence():
    watch = parser()
    cancel = {"result": {"canceled": True, "compact_revision": "9"}}
    watch._raw += chunk(json.dumps(cancel).encode() + b"\n")
    with pytest.raises(WatchCompacted) as compacted:
        watch._drain()
    assert compacted.value.compact_revision == 9
    ended = parser()
    ended._raw += b"0\r\n\r\n"
    with pytest.raises(EtcdUnavailable):
        ended._drain()


def test_a_refused_watch_is_an_error():
    watch = GatewayWatch.__new__(GatewayWatch)
    watch._raw, watch._body, watch._headers_done = bytearray(), bytearray(), False
    watch._raw += b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(EtcdUnavailable):
        watch._drain()


@pytest.mark.parametrize("prefix,end", [(b"/a/", b"/a0"), (b"a\xff", b"b"), (b"\xff", b"\x00")])
def test_prefix_end_selects_exactly_the_prefix(prefix, end):
    assert prefix_end(prefix) == end


@pytest.mark.parametrize("url", ["127.0.0.1:2379", "https://127.0.0.1:2379", "http://host"])
def test_an_endpoint_that_is_not_http_host_port_is_refused_by_name(url):
    with pytest.raises(ValueError, match="expected http://host:port"):
        EtcdGateway([url])
