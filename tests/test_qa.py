import pytest

from clipdpo_cli.qa import qa_to_caption, question_to_description


@pytest.mark.parametrize(
    "question,answer,expected",
    [
        ("What color is the car?", "red", "The car is red."),
        ("What colour are the flowers?", "Yellow.", "The flowers are yellow."),
        ("What is the woman holding?", "An umbrella", "The woman holding an umbrella."),
        ("How many dogs are in the picture?", "three", "Three dogs in the picture."),
        ("How many people are there?", "two", "Two people."),
        ("Where is the cat?", "on the sofa", "The cat on the sofa."),
        ("Who is standing near the car?", "a man", "A man standing near the car."),
        ("What is on the table?", "a vase", "A vase on the table."),
        ("Is the man smiling?", "yes", "The man smiling."),
        ("Is the man smiling?", "no", "No the man smiling."),
        ("Describe the scene", "a beach", "Describe the scene a beach."),
        ("  What   color is  the   bus ?", "  blue ", "The bus is blue."),
        ("What is the TV showing?", "NASA footage", "The TV showing NASA footage."),
    ],
)
def test_qa_to_caption(question, answer, expected):
    assert qa_to_caption(question, answer) == expected


def test_description_alone():
    assert question_to_description("What color is the car?") == "The car is"
    assert question_to_description("Where is the cat?") == "The cat"
