"""Right-to-left lines are split into runs of one direction, in logical order."""

from __future__ import annotations

from kiosk.ui.text import runs


def test_latin_words_with_their_punctuation_stay_one_run_in_arabic() -> None:
    # An organisation's after-call text with an e-mail address: it must read as typed.
    assert runs("أرسل المستندات إلى post@mitte.example.") == [
        ("أرسل المستندات إلى ", True),
        ("post@mitte.example", False),
        (".", True),
    ]
    assert runs("المادة Art. 6 Abs. 1 من") == [
        ("المادة ", True),
        ("Art. 6 Abs. 1", False),
        (" من", True),
    ]


def test_punctuation_between_arabic_words_goes_with_them() -> None:
    assert runs("مرحبًا! كيف حالك؟") == [("مرحبًا! كيف حالك؟", True)]
