"""The contract between triage and the rest of mailbot: the categories a contact can be
filed under and the urgency levels, from a threat to life down to a routine enquiry."""

from __future__ import annotations

from enum import StrEnum

SAFETY_CATEGORIES: tuple[str, ...] = (
    "suicide_self_harm",
    "mental_health",
    "physical_health_medication",
    "bullying_violence_threats",
    "debt",
    "drugs_alcohol",
    "bereavement",
    "new_to_custody",
    "loss_of_contact",
    "staff_conduct",
)
# The routine departments families write to; each has a signposting text.
ENQUIRY_CATEGORIES: tuple[str, ...] = (
    "visits",
    "property",
    "money",
    "phone_pin",
    "letters",
    "release_transfer",
    "complaint",
    "education_work",
    "gym",
    "chaplaincy",
    "healthcare_admin",
    "sentence_planning",
    "resettlement",
    "other",
)
CATEGORIES = SAFETY_CATEGORIES + ENQUIRY_CATEGORIES
# A safety topic chosen on the form gives context to an enquiry about these departments
# ("Debt" and a request to send money may be pressure on the wing), so a routine text
# about them never outweighs that choice. A dentist's waiting list under "Physical
# health", or a letter not arrived under "Lack of contact", is not such a case: the text
# is the department's own question, and its reply is still a draft a person reads.
RELATED_ENQUIRIES: dict[str, tuple[str, ...]] = {
    "debt": ("money",),
    "drugs_alcohol": ("healthcare_admin", "money"),
}
# A department named in a text is what it is about, before the generic topics it
# mentions on the way ("housing before release" is resettlement, not release). Among
# them, the first here wins: a complaint about anything is a complaint, probation's
# appointment after release is resettlement, not healthcare, and a gym question names his
# knee operation or injury only as the reason he needs medical clearance.
SPECIFIC_ENQUIRIES: tuple[str, ...] = (
    "complaint", "resettlement", "gym", "healthcare_admin", "sentence_planning", "chaplaincy",
    "education_work",
)


class Urgency(StrEnum):
    """How soon staff must act on a contact; stored in the communications log as its value."""

    IMMEDIATE = "immediate"
    URGENT = "urgent"
    ROUTINE = "routine"
    NOT_SAFER_CUSTODY = "not_safer_custody"


IMMEDIATE, URGENT, ROUTINE = Urgency.IMMEDIATE, Urgency.URGENT, Urgency.ROUTINE
NOT_SAFER_CUSTODY = Urgency.NOT_SAFER_CUSTODY
URGENCIES: tuple[str, ...] = tuple(Urgency)
SAFETY_LEVELS: tuple[str, ...] = (IMMEDIATE, URGENT, ROUTINE)
# Signal levels that are not safety levels: an enquiry only names a department; a marker
# decides nothing alone and is what combinations and lowerings look for.
# An idiom is a figure of speech ("the queue was killing me", "dying to see the kids"):
# it cancels the safety matches it overlaps and accounts for its words.
ENQUIRY, MARKER, IDIOM = "enquiry", "marker", "idiom"
SIGNAL_LEVELS: tuple[str, ...] = SAFETY_LEVELS + (ENQUIRY, MARKER, IDIOM)
RANK: dict[str, int] = {NOT_SAFER_CUSTODY: 0, ROUTINE: 1, URGENT: 2, IMMEDIATE: 3}
