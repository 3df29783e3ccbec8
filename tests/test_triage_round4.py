"""Round 4's engine changes, each on wordings of our own (never a held-out set's)."""

from __future__ import annotations

import pytest

from mailbot.triage import NOT_SAFER_CUSTODY, load_rules, triage


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.mark.parametrize(("text", "code"), [
    ("Hi there, buna ziua, can I book a visit for Saturday please? Multumesc frumos", "ro"),
    ("Good morning, obrigada for the help, can I send my son some roupa for winter?", "pt"),
    ("Hello, dzien dobry, how do I put money on his account? Dziekuje", "pl"),
])
def test_a_few_words_of_another_language_in_english_sentences_hold_it_for_staff(
        rules, text, code) -> None:
    result = triage(text, rules=rules)
    assert result.language == code
    assert result.urgency != NOT_SAFER_CUSTODY and not result.routine


@pytest.mark.parametrize("text", [
    "hiya can u tell me wen visits r on sat, me mam wants to come an all ta",
    "he sent me a foto of his pad, its stil got no curtains, can I send some in",
    "Is Dorota Kowalski allowed to visit with me and my sister Ionela?",
    "wee man's needing his trainers sent doon, whit's the address pal",
])
def test_text_speak_typos_dialect_and_names_stay_english(rules, text) -> None:
    assert triage(text, rules=rules).language == "en"


@pytest.mark.parametrize("text", [
    "Sat Sri Akal ji, main apne pati nu milan aana chaunda haan, visit kive book karni hai?",
    "Sat Sri Akal, mera puttar H wing vich hai, visit kive book karni hai ji? Dhanvaad",
])
def test_a_text_taken_for_english_at_low_confidence_in_few_english_words_is_held(
        rules, text) -> None:
    result = triage(text, rules=rules)
    assert result.is_safer_custody and not result.routine
    assert any("treated as safer custody" in reason for reason in result.reasons)


def test_a_short_english_question_with_an_acronym_stays_an_enquiry(rules) -> None:
    result = triage("Is he eligible for HDC?", rules=rules)
    assert not result.is_safer_custody
