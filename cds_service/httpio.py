"""Reading an HTTP answer body within a deadline and a byte limit (issue 12).

One mechanism for every outbound read (FHIR searches, JWKS key sets): the body is read as it
arrives, a few kilobytes at a time, so a server that drips its body one byte a second is
abandoned at the deadline, and an answer that inflates (gzip) past the limit is never held whole.
Reading in small steps keeps one step of decompression bounded (deflate expands at most about
1,000 times).
"""

from __future__ import annotations

import time

import requests
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

#: Bytes read from the socket at a time.
STEP = 8 * 1024


class ReadDeadline(Exception):
    """The body did not arrive before the deadline."""


class ReadTooLarge(Exception):
    """The body (after decompression) exceeded the byte limit."""


def read_limited(resp: requests.Response, stop_at: float, max_bytes: int) -> bytes:
    """The decoded body of a ``stream=True`` response, read before ``stop_at``
    (``time.monotonic()``) and at most ``max_bytes`` long (0: no limit). Raises
    :class:`ReadDeadline`, :class:`ReadTooLarge`, or a :mod:`requests` exception for a transport
    error (reading ``raw`` directly would otherwise surface urllib3's own classes)."""
    raw = resp.raw
    read1 = getattr(raw, "read1", None)
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > stop_at:
            raise ReadDeadline()
        try:
            data = read1(STEP, decode_content=True) if read1 is not None else raw.read(STEP, decode_content=True)
        except ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except Urllib3Error as exc:
            raise requests.exceptions.ConnectionError(str(exc)) from None
        if not data:
            return b"".join(chunks)
        size += len(data)
        if max_bytes and size > max_bytes:
            raise ReadTooLarge()
        chunks.append(data)


__all__ = ["ReadDeadline", "ReadTooLarge", "STEP", "read_limited"]
