from __future__ import annotations

from app.voice import simulated_audio
from app.voice.call import phrases


def test_speech_survives_any_chunking_and_silence_is_not_speech() -> None:
    audio = b"".join(
        [
            simulated_audio.silence(3),
            *simulated_audio.encode("book me in, ünïcode too"),
            simulated_audio.silence(2),
            *simulated_audio.encode("yes"),
        ]
    )
    for size in (1, 7, 160, 333, len(audio)):
        decoder = simulated_audio.Decoder()
        found = [
            text for i in range(0, len(audio), size) for text in decoder.feed(audio[i : i + size])
        ]
        assert found == ["book me in, ünïcode too", "yes"]
    assert simulated_audio.is_silence(simulated_audio.silence())
    assert not simulated_audio.is_silence(simulated_audio.encode("a")[0])
    assert all(len(frame) == 160 for frame in simulated_audio.encode("x" * 500))


def test_replies_are_spoken_and_marked_phrase_by_phrase() -> None:
    assert phrases("I can book 3 PM on Tuesday, November 24th. Shall I go ahead?") == [
        "I can book 3 PM on Tuesday,",
        "November 24th.",
        "Shall I go ahead?",
    ]
    assert phrases("  ") == []
