"""A reply the caller did not hear to the end (a barge-in on a streamed call).

The engines keep what they asked in the dialogue state. When the caller cut in before
the proposal's question was played, no answer of theirs may confirm it: the offline
engine's confirmation is marked unheard (a yes makes it say the question again in
full), and the LLM engine's pending change is withdrawn (the model must prepare it
again, which asks again).
"""

from __future__ import annotations

from typing import Any


def withdraw_unheard(state: dict[str, Any]) -> dict[str, Any]:
    """The state after a reply whose question was cut off; a new dict."""
    withdrawn = dict(state)
    if withdrawn.get("awaiting") == "confirm":
        withdrawn["confirm_unheard"] = True
    llm = withdrawn.get("llm")
    if isinstance(llm, dict) and llm.get("pending") is not None:
        withdrawn["llm"] = {**llm, "pending": None}
    return withdrawn
