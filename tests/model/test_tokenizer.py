"""model/tokenizer.py: the character tokenizer, and user text it cannot encode refused by name."""

import re

import pytest
from tokenizers import Tokenizer

from model.tokenizer import char_tokenizer_json, encode_text


@pytest.fixture(scope="module")
def chars():
    return Tokenizer.from_str(char_tokenizer_json())


def test_encode_text_is_the_tokenizers_ids(chars):
    assert encode_text(chars, "ROMEO:\nAy me!") == chars.encode("ROMEO:\nAy me!").ids
    assert encode_text(chars, "\n") == [0]        # the unknown token's own character is fine


@pytest.mark.parametrize("text, named", [("héllo ☃", "'é', '☃'"), ("tab\there", r"'\t'"),
                                         ("ééé", "'é'")], ids=["accent-snowman", "tab", "repeated"])
def test_encode_text_names_what_the_tokenizer_lacks(chars, text, named):
    assert chars.encode(text).ids.count(0) > 0     # what the tokenizer alone does: token 0
    with pytest.raises(ValueError, match="^" + re.escape(f"the model's tokenizer has no token for "
                       f"{named} in the prompt; leave them out or replace them") + "$"):
        encode_text(chars, text)
