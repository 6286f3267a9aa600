"""What counts as heard of the agent's reply, from the marks Twilio echoed."""

from __future__ import annotations

from app.voice.call import Playback, phrases


def played(text: str, count: int) -> Playback:
    playback = Playback(phrases(text))
    playback.played = set(range(count))
    return playback


PROPOSAL = "I can book a consultation at 3 PM on Tuesday, November 24th. Shall I go ahead?"
CANCEL_ALL = "You have 2 appointments: Tuesday and Wednesday. Shall I cancel all 2? Say yes."


def test_a_proposal_is_heard_only_with_its_date_and_its_question() -> None:
    assert [played(PROPOSAL, n).question_heard() for n in range(4)] == [
        False,
        False,
        False,
        True,
    ]
    assert (
        played(PROPOSAL, 2).heard()
        == "I can book a consultation at 3 PM on Tuesday, November 24th."
    )


def test_words_after_the_question_are_not_needed() -> None:
    assert len(phrases(CANCEL_ALL)) == 4
    assert played(CANCEL_ALL, 3).question_heard()
    assert not played(CANCEL_ALL, 2).question_heard()


def test_a_reply_without_a_question_must_be_heard_whole() -> None:
    text = "You're booked for a consultation at 3 PM on Tuesday, November 24th."
    assert not played(text, 1).question_heard()
    assert played(text, 2).question_heard()
