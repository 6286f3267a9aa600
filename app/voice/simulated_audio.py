"""A stand-in for speech inside μ-law audio, for the fake Deepgram and the simulator.

The simulator has no voice and the fake Deepgram has no recogniser, so "speech" is text
carried in the audio frames themselves: a marked, length-prefixed run of bytes, padded
with μ-law silence (0xFF). Real audio never decodes as speech here (the marker is checked),
so the fake hears only what a script or a typed line said.
"""

from __future__ import annotations

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law, the frame Twilio sends
SILENCE_BYTE = 0xFF
MARKER = b"\x00SPK"


def silence(frames: int = 1) -> bytes:
    return bytes([SILENCE_BYTE]) * (FRAME_BYTES * frames)


def encode(text: str, *, min_frames: int = 1) -> list[bytes]:
    """Frames carrying `text`: the marker, a 2-byte length, the UTF-8 text, padding."""
    body = text.encode()
    blob = MARKER + len(body).to_bytes(2, "big") + body
    frames = max(min_frames, -(-len(blob) // FRAME_BYTES))
    blob = blob.ljust(frames * FRAME_BYTES, bytes([SILENCE_BYTE]))
    return [blob[i : i + FRAME_BYTES] for i in range(0, len(blob), FRAME_BYTES)]


def is_silence(frame: bytes) -> bool:
    return frame.count(SILENCE_BYTE) == len(frame)


class Decoder:
    """Feeds on audio bytes in any chunking; yields each text carried in them."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._buffer.extend(data)
        found: list[str] = []
        while True:
            start = self._buffer.find(MARKER)
            if start < 0:
                # Keep a tail that may hold the start of a marker split across chunks.
                del self._buffer[: max(0, len(self._buffer) - len(MARKER))]
                return found
            head = start + len(MARKER)
            if len(self._buffer) < head + 2:
                del self._buffer[:start]
                return found
            size = int.from_bytes(self._buffer[head : head + 2], "big")
            if len(self._buffer) < head + 2 + size:
                del self._buffer[:start]
                return found
            found.append(self._buffer[head + 2 : head + 2 + size].decode(errors="replace"))
            del self._buffer[: head + 2 + size]
