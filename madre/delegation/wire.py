"""The connection classes Madre's module pools use: urllib3's, reading a response's headers
without the e-mail parser.

http.client hands every response's header block to `email.parser` (a feed parser built for
MIME messages), which costs more than the rest of a small JSON call together: about a
third of a module call's CPU on the loopback benchmark. A module's answer has a handful of
plain `Name: value` lines; those are split here directly into the same `HTTPMessage`. A
block this reader is not sure of (a folded line, a line without a colon, a name with a
space) goes to the e-mail parser as before, so nothing is read differently.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import Any, BinaryIO

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

_END = (b"\r\n", b"\n", b"")
# A header name the e-mail parser reads as one: printable ASCII, no space, no colon.
_NAME = re.compile(r"[\041-\071\073-\176]+")


def read_headers(fp: BinaryIO) -> http.client.HTTPMessage:
    """The header block at `fp` (after the status line), as http.client would parse it."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # its line limits
    message = http.client.HTTPMessage()
    for raw in lines:
        if raw in _END:
            break
        line = raw.decode("iso-8859-1")
        name, colon, value = line.partition(":")
        if not colon or not _NAME.fullmatch(name):
            return _by_email_parser(lines)
        # As the e-mail parser's compat32 policy stores it: leading blanks and the line end off.
        message[name] = value.lstrip(" \t").rstrip("\r\n")
    return message


def _by_email_parser(lines: list[bytes]) -> http.client.HTTPMessage:
    text = b"".join(lines).decode("iso-8859-1")
    return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)  # type: ignore[return-value]


class _Response(http.client.HTTPResponse):
    """http.client's response with `read_headers` in place of `parse_headers`; the rest of
    `begin` is http.client's own (status line, 100 Continue, chunked, length, close)."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = read_headers(self.fp)
        transfer = self.headers.get("transfer-encoding")
        self.chunked = bool(transfer and transfer.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
                or 100 <= status < 200 or self._method == "HEAD"):  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class _Connection(HTTPConnection):
    response_class = _Response


class _SecureConnection(HTTPSConnection):
    response_class = _Response


class ModulePool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class SecureModulePool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _SecureConnection


def pool(scheme: str, host: str, port: int, **options: Any) -> urllib3.HTTPConnectionPool:
    """A keep-alive pool for one module address."""
    kind = SecureModulePool if scheme == "https" else ModulePool
    return kind(host, port, **options)
