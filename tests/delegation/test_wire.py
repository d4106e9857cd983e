"""The module pools read a response's headers without the e-mail parser, and read them as
http.client does: the same names, values, order and defects, whatever the block holds."""

from __future__ import annotations

import http.client
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from madre.delegation.wire import read_headers

NAMES = st.sampled_from(["Content-Type", "content-length", "X-A", "Set-Cookie", "Bad Name",
                         " Lead", "From x", "A ", "", "é", "Key:With"])
VALUES = st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=255,
                                        blacklist_characters="\r\n"), max_size=12)
LINES = st.one_of(
    st.builds(lambda n, v: f"{n}:{v}", NAMES, VALUES),
    st.builds(lambda v: f" {v}", VALUES),  # a folded line
    st.builds(lambda v: f"\t{v}", VALUES),
    VALUES,  # no colon at all
)
ENDS = st.sampled_from(["\r\n", "\n"])


def _both(block: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    return read_headers(io.BytesIO(block + b"BODY")), http.client.parse_headers(
        io.BytesIO(block + b"BODY"))


def _same(ours: http.client.HTTPMessage, theirs: http.client.HTTPMessage) -> None:
    assert ours.items() == theirs.items()
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]


def test_plain_headers_are_read_as_http_client_reads_them_repeats_included() -> None:
    ours, theirs = _both(b"Content-Type: application/json\r\nContent-Length: 12\r\n"
                         b"X-Spaced:   value  \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n")
    _same(ours, theirs)
    assert ours.get_all("set-cookie") == ["a=1", "b=2"]
    assert ours["content-length"] == "12"


def test_the_body_after_the_headers_is_left_unread() -> None:
    fp = io.BytesIO(b"A: b\r\n\r\n{\"x\": 1}")
    read_headers(fp)
    assert fp.read() == b"{\"x\": 1}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LINES, ENDS), max_size=6), ENDS)
def test_any_header_block_is_read_exactly_as_http_client_reads_it(
    lines: list[tuple[str, str]], end: str,
) -> None:
    block = "".join(text + eol for text, eol in lines) + end
    _same(*_both(block.encode("latin-1")))
