"""The rule-based extraction used without a language model."""

from __future__ import annotations

from isa.memory import extract


def test_my_x_is_y_becomes_a_user_fact_keyed_by_the_relation() -> None:
    (fact,) = extract.extract_facts("Remember that my sister's name is Lena.")
    assert (fact.subject, fact.predicate, fact.object_value) == ("user", "sister_name", "Lena")
    assert fact.fact_type == "personal_info"


def test_several_statements_give_several_facts_and_unknown_text_a_note() -> None:
    facts = extract.extract_facts("I live in Berlin. I work at Acme Corp! I love green tea.")
    assert [(f.predicate, f.object_value) for f in facts] == [
        ("lives_in", "Berlin"),
        ("works_at", "Acme Corp"),
        ("likes", "green tea"),
    ]
    (note,) = extract.extract_facts("The meeting went well")
    assert note.predicate == "note" and note.object_value == "The meeting went well"


def test_concepts_procedures_and_episodes_are_structured() -> None:
    assert extract.extract_concept("Kubernetes is a container orchestrator.")[0] == "Kubernetes"
    assert extract.extract_steps("1. Open the lid\n2. Pour the water\n3. Press start") == [
        "Open the lid",
        "Pour the water",
        "Press start",
    ]
    assert extract.extract_steps("First boil water, then add tea, finally wait 3 minutes") == [
        "boil water",
        "add tea",
        "wait 3 minutes",
    ]
    assert extract.procedure_name("This is how to make tea. Boil water.") == "how to make tea"
    assert extract.participants("Went hiking with Anna and Tom in the Alps.") == ["Anna", "Tom"]
