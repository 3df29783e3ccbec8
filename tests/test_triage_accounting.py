"""Positive evidence, figures of speech, emoji, languages and the form's choices: the
parts of triage that decide whether a text may be answered automatically."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.triage import load_rules, triage

RULES = load_rules()


def tri(text: str, **form: str):  # type: ignore[no-untyped-def]
    return triage(text, rules=RULES, **form)


@pytest.mark.parametrize("text", [
    "What time are visits on a Sunday?",
    "Hi, can I send him some money by bank transfer? Thanks, Jo",
    "is the gym open at the weekend",
    "Dear Sir or Madam, what ID do I need to bring for a visit? Kind regards, Mrs J. Whitcombe",
])
def test_a_short_routine_enquiry_is_accounted_for_and_may_be_answered(text: str) -> None:
    result = tri(text)
    assert not result.is_safer_custody and result.routine and result.unaccounted == ()


@pytest.mark.parametrize(("text", "sentence"), [
    ("Can I book a visit? He says he won't need his clothes after Sunday.",
     "He says he won't need his clothes after Sunday"),
    ("What time are visits? He gave his radio and trainers to the lad next door.",
     "He gave his radio and trainers to the lad next door"),
    ("How do I send money? Our Jade starts at the big school in September.",
     "Our Jade starts at the big school in September"),
])
def test_one_sentence_no_rule_accounts_for_rules_out_an_automatic_reply(
    text: str, sentence: str
) -> None:
    result = tri(text)
    assert not result.routine
    assert sentence in result.unaccounted or result.is_safer_custody


@pytest.mark.parametrize(("text", "sentence"), [
    ("He rang and said he will do it soon. Can you book a visit?",
     "He rang and said he will do it soon"),
    ("He phoned to say this is it. Thanks", "He phoned to say this is it"),
    ("He said on the phone he is going to do it. A1234BC",
     "He said on the phone he is going to do it"),
])
def test_everyday_words_that_say_what_no_enquiry_says_go_to_a_person(
    text: str, sentence: str
) -> None:
    # Every word is routine vocabulary, but "he'll do it", "this is it" are no enquiry.
    result = tri(text)
    assert result.is_safer_custody and not result.routine
    assert sentence in result.unaccounted


def test_the_same_everyday_words_about_an_enquiry_still_get_a_reply() -> None:
    for text in ("Who do I speak to about when my son's Cat D review is happening?",
                 "He has picked the date for his family visit. Can his nan come?"):
        result = tri(text)
        assert not result.is_safer_custody, text


def test_a_death_told_with_a_funeral_request_is_a_chaplaincy_enquiry_for_a_person() -> None:
    result = tri("His gran's funeral is on the 12th. Can he attend or watch it online?")
    assert not result.is_safer_custody and result.categories[0] == "chaplaincy"
    assert not result.routine  # a death is told: a person sends the reply
    assert any("rule death_told_with_an_enquiry" in r for r in result.reasons)
    photos = tri("His mum died when he was little. How many photos can he have in his cell?")
    assert not photos.is_safer_custody and not photos.routine


@pytest.mark.parametrize("text", [
    "His gran died. He doesn't know yet, can the chaplain tell him in person?",
    "His gran died and I'm scared how he'll take it. Can he go to the funeral?",
    "His gran died and he has not eaten since. Can he go to the funeral?",
    "His dad died on Thursday. He went silent on the phone and hung up.",
    "His nan passed away. We will tell him tonight, can staff keep an eye on him?",
])
def test_a_death_with_any_other_worry_stays_a_safety_concern(text: str) -> None:
    assert tri(text).is_safer_custody


def test_words_of_harm_no_rule_explains_make_a_text_safer_custody() -> None:
    result = tri("What time are visits? He has been feeling hopeless in there.")
    assert result.is_safer_custody and not result.routine


def test_a_figure_of_speech_is_shown_but_is_no_signal() -> None:
    result = tri("The queue at visits was killing me! Can I book an earlier slot?")
    assert not result.is_safer_custody
    assert any(r.startswith("figure of speech:") for r in result.reasons)
    assert not result.routine  # a person still reads it


def test_the_same_words_about_him_are_a_concern() -> None:
    assert tri("He says he is going to kill himself tonight").urgency == "immediate"


def test_a_word_a_safety_rule_set_aside_is_explained_not_suspicious() -> None:
    # "cracked" is a drugs word, but the drugs rule's own `unless` reads a cracked screen.
    result = tri("His phone screen cracked in the van. Who does he claim from?")
    assert not result.is_safer_custody
    assert tri("He has been on the crack again. Can I send money?").is_safer_custody


def test_the_department_the_text_names_comes_before_the_topic_chosen() -> None:
    result = tri("Can he see the imam about Friday prayers?", topic="Something else")
    assert result.categories[0] == "chaplaincy"


def test_emoji_are_read_as_words_and_an_unknown_one_is_not_accounted_for() -> None:
    assert tri("💊💊💊 goodnight mum").urgency == "immediate"
    assert tri("he's been a bit 😔 lately, could someone see how he's doing").is_safer_custody
    result = tri("can i bring the baby 🍼 to the visit")
    assert not result.is_safer_custody and not result.routine


def test_a_text_in_polish_is_flagged_held_for_staff_and_read_by_the_polish_rules() -> None:
    enquiry = tri("Dzień dobry, o której godzinie zaczynają się widzenia w niedzielę?")
    assert enquiry.language == "pl" and enquiry.is_safer_custody and not enquiry.routine
    threat = tri("Moj brat powiedzial, ze dzisiaj w nocy powiesi sie na przescieradle.")
    assert threat.urgency == "immediate"


def test_a_language_without_rules_cannot_be_assessed() -> None:
    result = tri("Bonjour, mon fils est en prison chez vous, je voudrais savoir comment "
                 "lui rendre visite avec mes enfants le samedi.")
    assert result.language == "fr" and not result.assessed and result.urgency == "urgent"
    assert any("could not be assessed: French" in r for r in result.reasons)


def test_form_choices_are_outweighed_by_a_routine_text_but_never_auto_replied() -> None:
    topic = tri("What time are visits on a Sunday?", topic="Mental health")
    assert not topic.is_safer_custody and not topic.routine
    worried = tri("What time are visits on a Sunday?",
                  urgency_choice="I am worried about their safety")
    assert not worried.is_safer_custody and not worried.routine
    aside = tri("What time are visits on a Sunday? He says it is proper peak on the wing.",
                urgency_choice="I am worried about their safety")
    assert aside.is_safer_custody and aside.unaccounted == (
        "He says it is proper peak on the wing",)
    slip = tri("I pressed the wrong thing, he's fine. What time are visits on a Sunday?",
               urgency_choice="I am worried about their safety")
    assert not slip.is_safer_custody and not slip.routine


def test_debt_chosen_with_a_request_to_send_money_stays_safer_custody() -> None:
    assert tri("he has asked me to send money, is this allowed?", topic="Debt").is_safer_custody


def test_an_extending_file_adds_routine_words(tmp_path: Path) -> None:
    local = tmp_path / "local.toml"
    local.write_text('extends = "default"\n[accounting]\nroutine_words = ["minibus"]\n')
    rules = load_rules(local)
    assert len(rules.accounting.routine_words) > len(RULES.accounting.routine_words)
    assert triage("is there a minibus from the station to visits", rules=rules).routine
    assert not tri("is there a minibus from the station to visits").routine


def test_a_prisoner_number_typed_with_a_space_is_accounted_for() -> None:
    result = tri("Can I send him a new radio? Keith Bragg, S4436 YY. Ta duck.")
    assert not result.is_safer_custody and result.routine and result.unaccounted == ()
