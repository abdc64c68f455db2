"""When the TLS server's request gate lets a request through to a worker thread."""

from __future__ import annotations

import pytest

from gproc.security.tls_gate import MAX_HEADER_BYTES, wanted_bytes

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
GET = b"GET /?wsdl HTTP/1.1\r\nHost: x\r\n\r\n"
UPPER = b"POST / HTTP/1.1\r\nCONTENT-LENGTH:7\r\n\r\n"
CHUNKED = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
EXPECT = b"PUT /f HTTP/1.1\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n"


@pytest.mark.parametrize(
    "buf,prefetch,want",
    [
        (b"", 1000, None),
        (b"POST / HTTP/1.1\r\nHost: x\r\n", 1000, None),  # headers not complete
        (HEAD, 1000, len(HEAD) + 100),  # the whole body
        (HEAD + b"x" * 10, 1000, len(HEAD) + 100),
        (HEAD, 50, len(HEAD) + 50),  # bodies count up to the prefetch bound
        (HEAD, 49, len(HEAD)),  # and not at all beyond twice that
        (GET, 1000, len(GET)),  # no body
        (UPPER, 1000, len(UPPER) + 7),  # header names in any case
        (CHUNKED, 1000, len(CHUNKED)),  # unknown length: the headers are enough
        (EXPECT, 1000, len(EXPECT)),  # the client waits for 100 Continue
        (b"x" * MAX_HEADER_BYTES, 1000, MAX_HEADER_BYTES),  # oversized: cheroot refuses it
    ],
)
def test_wanted_bytes(buf: bytes, prefetch: int, want: int | None) -> None:
    assert wanted_bytes(buf, prefetch) == want
