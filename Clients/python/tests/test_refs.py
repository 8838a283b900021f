"""plinth._refs: the client's copy of the daemon's reference parser. Pure
unit tests, no server: every spelling, and each malformed reference refused
with a message that quotes it and lists the accepted forms."""

import pytest

import plinth
from plinth._refs import ACCEPTED_FORMS, ModelReference, parse_model_reference, version_request_fields


@pytest.mark.parametrize("text, expected", [
    ("fraud@champion", ModelReference("fraud", alias="champion")),
    ("fraud/3", ModelReference("fraud", version=3)),
    ("fraud:3", ModelReference("fraud", version=3)),
    ("fraud", ModelReference("fraud", alias="production")),
    ("fraud-v2_x@shadow-1", ModelReference("fraud-v2_x", alias="shadow-1")),
])
def test_every_spelling(text, expected):
    assert parse_model_reference(text) == expected


def test_str_is_the_form_every_parser_reads_back():
    assert str(parse_model_reference("fraud:3")) == "fraud/3"
    assert str(parse_model_reference("fraud")) == "fraud@production"
    for text in ("fraud@champion", "fraud/3"):
        assert str(parse_model_reference(text)) == text


@pytest.mark.parametrize("text", [
    "", "@prod", "/3", ":3", "fraud@", "fraud/", "fraud:", "fraud/abc", "fraud:x", "fraud/0", "fraud/-1",
    "fraud/+3", "fraud/ 3", "fraud/3.0", "fraud/3_0", "fraud/99999999999999999999", "a@b@c", "fraud@a:1",
    "fraud/1/2", "a@b/3",
])
def test_malformed_references_are_refused(text):
    with pytest.raises(plinth.InvalidArgumentError) as refused:
        parse_model_reference(text)
    message = refused.value.message
    assert repr(text) in message and ACCEPTED_FORMS in message


def test_the_clashing_separators_are_named():
    with pytest.raises(plinth.InvalidArgumentError, match="more than one '@'"):
        parse_model_reference("a@b@c")
    with pytest.raises(plinth.InvalidArgumentError, match="both '@' and ':'"):
        parse_model_reference("fraud@a:1")


def test_not_a_string_is_refused():
    with pytest.raises(plinth.InvalidArgumentError):
        parse_model_reference(None)


def test_request_fields_of_registry_calls():
    assert version_request_fields("fraud") == ("fraud", 0, "production")
    assert version_request_fields("fraud/4") == ("fraud", 4, "")
    assert version_request_fields("fraud@shadow") == ("fraud", 0, "shadow")
    assert version_request_fields("fraud", version=2) == ("fraud", 2, "")
    assert version_request_fields("fraud", alias="champion") == ("fraud", 0, "champion")
    for bad in [dict(name="fraud", version=2, alias="champion"), dict(name="fraud/4", version=2),
                dict(name="fraud@a", alias="b"), dict(name="fraud", version=0), dict(name="fraud", version=True),
                dict(name="fraud", alias=""), dict(name="")]:
        with pytest.raises(plinth.InvalidArgumentError):
            version_request_fields(**bad)
