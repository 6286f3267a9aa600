"""Do the hand rules generalise, or would a small trained model do better?

The corpus (bench/data/intents.tsv: intent <TAB> phrase) is split reproducibly by a hash
of each phrase: a quarter is held out and never used to write rules or fit the model.
The model is scikit-learn's TF-IDF over character 2-5-grams with a logistic regression
(fixed seed), trained on the rest; the hand rules are app/agent/understanding.read.
Prints accuracy of both on the held-out quarter (and on the training part, to show how
much each one fits what it has seen).

    .venv/bin/pip install scikit-learn
    .venv/bin/python bench/intent_generalisation.py
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.agent.understanding import read
from app.calendar.availability import AppointmentType, Schedule
from app.demo import DEMO_HOURS, DEMO_TYPES

CORPUS = Path(__file__).resolve().parent / "data" / "intents.tsv"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def held_out(phrase: str) -> bool:
    return int(hashlib.sha256(phrase.encode()).hexdigest(), 16) % 4 == 0


def load() -> list[tuple[str, str]]:
    rows = []
    for line in CORPUS.read_text().splitlines():
        if line.strip():
            label, phrase = line.split("\t", 1)
            rows.append((label, phrase))
    return rows


def rules(phrase: str, hours: object, types: list[AppointmentType]) -> str:
    message = read(phrase, NOW, hours, types)  # type: ignore[arg-type]
    if message.intent is None and not message.when.empty:
        return "book"  # what the engine does with a bare date or time
    return message.intent or "other"


def accuracy(pairs: list[tuple[str, str]]) -> str:
    right = sum(1 for want, got in pairs if want == got)
    return f"{right}/{len(pairs)} ({100 * right / len(pairs):.0f}%)"


def main() -> int:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rows = load()
    train = [(label, text) for label, text in rows if not held_out(text)]
    test = [(label, text) for label, text in rows if held_out(text)]
    schedule = Schedule.from_settings(
        timezone="America/Los_Angeles", weekly_hours=DEMO_HOURS, appointment_types=DEMO_TYPES
    )
    types = list(schedule.types)
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True),
        LogisticRegression(max_iter=2000, C=10.0, random_state=0),
    )
    model.fit([text for _, text in train], [label for label, _ in train])
    print(f"corpus: {len(rows)} phrases, {len(train)} train, {len(test)} held out")
    print("| reader | held-out accuracy | training-part accuracy |")
    print("| --- | --- | --- |")
    for name, predict in (
        ("hand rules (understanding.read)", lambda t: rules(t, schedule.hours, types)),
        ("char n-gram TF-IDF + logistic regression", lambda t: str(model.predict([t])[0])),
    ):
        held = [(label, predict(text)) for label, text in test]
        seen = [(label, predict(text)) for label, text in train]
        print(f"| {name} | {accuracy(held)} | {accuracy(seen)} |")
        if "-v" in sys.argv:
            # Only the training part's misses are shown: rules are written from those,
            # never from the held-out quarter.
            wrong = [
                f"{t!r}: {w}->{g}" for (w, t), (_, g) in zip(train, seen, strict=True) if w != g
            ]
            print("   training-part misses:", "; ".join(wrong))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
