"""Tokenizers: any Hugging Face ``tokenizer.json`` through ``tokenizers``, and the character-level
tokenizer the shipped tiny models use (one token per character, saved as a ``tokenizer.json``)."""

from pathlib import Path

from .config import CheckpointError

# The 65 characters of TinyShakespeare (sorted), the default character vocabulary.
SHAKESPEARE_ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def char_tokenizer_json(alphabet: str = SHAKESPEARE_ALPHABET) -> str:
    """A ``tokenizer.json`` mapping each character of ``alphabet`` to its index; decoding fuses."""
    if len(set(alphabet)) != len(alphabet):
        raise ValueError("char_tokenizer_json: alphabet has repeated characters")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(alphabet)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=alphabet[0]))
    # Every character, newlines included, is its own piece.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok.to_str()


def load_tokenizer(directory):
    """The checkpoint's tokenizer (``tokenizer.json``) or a CheckpointError saying it is absent."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: no tokenizer.json in the checkpoint; pass token ids instead")
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(path.read_text())
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise CheckpointError(f"{path}: not a valid tokenizer.json ({e})") from None



def encode_text(tokenizer, text: str) -> list[int]:
    """The token ids of user text, or a ValueError naming the characters ``tokenizer`` has no token
    for: they would become its unknown token (a newline for the character-level models), a prompt
    the user did not write. Every path that encodes user text goes through here."""
    encoding = tokenizer.encode(text)
    unknown = getattr(tokenizer.model, "unk_token", None)
    unknown_id = tokenizer.token_to_id(unknown) if unknown is not None else None
    if unknown_id is not None:
        missing = dict.fromkeys(text[a:b] for i, (a, b) in zip(encoding.ids, encoding.offsets)
                                if i == unknown_id and text[a:b] != unknown)
        if missing:
            raise ValueError(f"the model's tokenizer has no token for {', '.join(map(repr, missing))}"
                             " in the prompt; leave them out or replace them")
    return encoding.ids
