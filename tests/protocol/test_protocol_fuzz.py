"""Hostile input: the codec raises ProtocolError and nothing else; framing stays bounded."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import INT32_MAX, INT32_MIN, records

from coord.protocol import (
    ALL_RECORDS,
    DEFAULT_MAX_FRAME,
    ConnectRequest,
    ConnectResponse,
    FrameDecoder,
    FrameTooLargeError,
    ProtocolError,
    Record,
    frame,
)

#: Records whose trailing readOnly byte is optional, so dropping it still decodes.
OPTIONAL_TAIL = (ConnectRequest, ConnectResponse)


def _name(cls: type) -> str:
    return cls.__name__


def _decode_or_protocol_error(cls: type[Record], data: bytes) -> Record | None:
    """Decode ``data``; a ProtocolError gives None, any other exception fails the test."""
    try:
        record = cls.from_bytes(data)
    except ProtocolError:
        return None
    # Whatever decodes is a record that encodes and decodes to itself again.
    assert isinstance(record, cls)
    assert cls.from_bytes(record.to_bytes()) == record
    return record


# --- records ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=96))
def test_Record_from_bytes_of_arbitrary_bytes_raises_only_ProtocolError(
    cls: type[Record], data: bytes
) -> None:
    """Decoding arbitrary bytes either succeeds or raises ProtocolError."""
    _decode_or_protocol_error(cls, data)


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=30, deadline=None)
@given(ints=st.lists(st.sampled_from([-2, -1, 0, 1, 2, 4, 11, 2**20, INT32_MAX]), max_size=24))
def test_Record_from_bytes_of_plausible_ints_raises_only_ProtocolError(
    cls: type[Record], ints: list[int]
) -> None:
    """Streams of small, null (-1), negative and huge lengths/counts give only ProtocolError."""
    _decode_or_protocol_error(cls, b"".join(i.to_bytes(4, "big", signed=True) for i in ints))


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_Record_truncated_encoding_raises_ProtocolError(
    cls: type[Record], data: st.DataObject
) -> None:
    """Every strict prefix of a valid encoding is a ProtocolError (bar an optional readOnly)."""
    encoded = data.draw(records(cls)).to_bytes()
    for end in range(len(encoded)):
        if cls in OPTIONAL_TAIL and end == len(encoded) - 1:
            assert cls.from_bytes(encoded[:end]).read_only is False
            continue
        with pytest.raises(ProtocolError):
            cls.from_bytes(encoded[:end])


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=10, deadline=None)
@given(data=st.data(), extra=st.binary(min_size=1, max_size=8))
def test_Record_trailing_bytes_raise_ProtocolError(
    cls: type[Record], data: st.DataObject, extra: bytes
) -> None:
    """from_bytes rejects bytes after a complete record."""
    encoded = data.draw(records(cls)).to_bytes()
    with pytest.raises(ProtocolError):
        cls.from_bytes(encoded + extra)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete"]),
        st.integers(0, 2**16),  # position, modulo the length at the time
        st.integers(1, 255),  # xor mask for a flip
        st.binary(min_size=1, max_size=4),  # bytes to insert
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), edits=mutations)
def test_Record_mutated_encoding_raises_only_ProtocolError(
    cls: type[Record], data: st.DataObject, edits: list[tuple[str, int, int, bytes]]
) -> None:
    """Flipping, inserting or deleting bytes of a valid encoding gives a record or a
    ProtocolError, never another exception."""
    mutated = bytearray(data.draw(records(cls)).to_bytes())
    for action, where, mask, inserted in edits:
        pos = where % (len(mutated) + 1)
        if action == "insert":
            mutated[pos:pos] = inserted
        elif pos < len(mutated):
            if action == "flip":
                mutated[pos] ^= mask
            else:
                del mutated[pos]
    _decode_or_protocol_error(cls, bytes(mutated))


@pytest.mark.parametrize("cls", ALL_RECORDS, ids=_name)
@settings(max_examples=20, deadline=None)
@given(data=st.binary(max_size=64))
def test_Record_from_bytes_is_the_same_for_bytes_bytearray_and_memoryview(
    cls: type[Record], data: bytes
) -> None:
    """from_bytes gives the same result (or the same ProtocolError) for any buffer type."""
    expected = _decode_or_protocol_error(cls, data)
    for view in (bytearray(data), memoryview(data)):
        if expected is None:
            with pytest.raises(ProtocolError):
                cls.from_bytes(view)
        else:
            assert cls.from_bytes(view) == expected


# --- framing ---------------------------------------------------------------------------

payloads = st.lists(st.binary(max_size=40), max_size=6)


def _chunks(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def test_frame_prefixes_the_big_endian_length() -> None:
    """frame() is a 4-byte big-endian length followed by the payload."""
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"") == b"\x00\x00\x00\x00"


@settings(max_examples=80, deadline=None)
@given(frames=payloads, data=st.data())
def test_FrameDecoder_arbitrary_chunking_yields_the_same_frames(
    frames: list[bytes], data: st.DataObject
) -> None:
    """However the stream is split into reads, the decoder returns the frames sent, in order."""
    stream = b"".join(frame(p) for p in frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    decoder = FrameDecoder()
    got: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        decoder.receive_data(chunk)
        got.extend(decoder.frames())
    assert got == frames
    assert decoder.buffered == 0
    assert decoder.next_frame() is None


@settings(max_examples=40, deadline=None)
@given(frames=payloads, data=st.data())
def test_FrameDecoder_next_frame_and_frames_agree(frames: list[bytes], data: st.DataObject) -> None:
    """Taking frames one at a time with next_frame gives what frames() gives."""
    stream = b"".join(frame(p) for p in frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    decoder = FrameDecoder()
    got: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        decoder.receive_data(memoryview(chunk))
        while (payload := decoder.next_frame()) is not None:
            got.append(payload)
    assert got == frames


@settings(max_examples=40, deadline=None)
@given(
    max_frame=st.integers(0, 64),
    excess=st.integers(1, INT32_MAX),
    negative=st.integers(INT32_MIN, -1),
    use_negative=st.booleans(),
)
def test_FrameDecoder_bad_length_raises_as_soon_as_the_length_arrives(
    max_frame: int, excess: int, negative: int, use_negative: bool
) -> None:
    """A length above max_frame or below 0 raises FrameTooLargeError on its 4th byte,
    before any payload arrives."""
    length = negative if use_negative else min(max_frame + excess, INT32_MAX)
    prefix = length.to_bytes(4, "big", signed=True)
    decoder = FrameDecoder(max_frame)
    for i in range(3):
        decoder.receive_data(prefix[i : i + 1])
        assert decoder.next_frame() is None
    decoder.receive_data(prefix[3:])
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()
    with pytest.raises(FrameTooLargeError):
        decoder.frames()


def test_FrameDecoder_default_limit_is_jute_maxbuffer() -> None:
    """The default decoder accepts a DEFAULT_MAX_FRAME length and rejects one byte more."""
    decoder = FrameDecoder()
    decoder.receive_data(DEFAULT_MAX_FRAME.to_bytes(4, "big"))
    assert decoder.next_frame() is None
    decoder = FrameDecoder()
    decoder.receive_data((DEFAULT_MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


def test_FrameDecoder_accepts_exactly_max_frame() -> None:
    """A payload of exactly max_frame bytes is a valid frame; an empty one too."""
    decoder = FrameDecoder(8)
    decoder.receive_data(frame(b"12345678") + frame(b""))
    assert decoder.frames() == [b"12345678", b""]


def test_FrameDecoder_returns_frames_before_a_bad_length() -> None:
    """Complete frames ahead of a bad length prefix are returned by next_frame before it
    raises."""
    decoder = FrameDecoder(8)
    decoder.receive_data(frame(b"ok") + (9).to_bytes(4, "big"))
    assert decoder.next_frame() == b"ok"
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


def test_FrameTooLargeError_is_a_ProtocolError() -> None:
    """Framing errors are protocol errors, so one handler covers the whole codec."""
    assert issubclass(FrameTooLargeError, ProtocolError)


def test_FrameDecoder_peek_does_not_consume() -> None:
    """peek(n) shows buffered bytes without taking them."""
    decoder = FrameDecoder()
    decoder.receive_data(frame(b"xy"))
    assert decoder.peek(5) == b"\x00\x00\x00\x02x"
    assert decoder.peek(100) == frame(b"xy")
    assert decoder.buffered == 6
    assert decoder.next_frame() == b"xy"
    assert decoder.peek(4) == b""


@settings(max_examples=80, deadline=None)
@given(
    max_frame=st.integers(0, 48),
    data=st.data(),
)
def test_FrameDecoder_buffers_at_most_one_frame_plus_one_chunk(
    max_frame: int, data: st.DataObject
) -> None:
    """A decoder drained after every read holds at most max_frame + 4 bytes plus that read."""
    frames = data.draw(st.lists(st.binary(max_size=max_frame), max_size=6))
    stream = b"".join(frame(p) for p in frames)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    decoder = FrameDecoder(max_frame)
    got: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        before = decoder.buffered
        assert before < max_frame + 4  # an incomplete frame at most
        decoder.receive_data(chunk)
        assert decoder.buffered == before + len(chunk)
        got.extend(decoder.frames())
        assert decoder.buffered < max_frame + 4
    assert got == frames
