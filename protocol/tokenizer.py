"""The GPT family's byte-pair tokenizer: byte-level BPE (GPT-2's scheme) trained here, with the `tokenizers`
package, on the built-in Shakespeare corpus. Nothing is downloaded, and the vocabulary is a pure function of
its size and that pinned package: everyone who splits a bounty's text (the coordinator publishing shards, an
auditor recomputing their CIDs) gets the same token ids. Training takes about a second; it is done once per
process and size.

Byte-level: any text encodes (every byte has a token), and decoding the ids gives the text back exactly.
"""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from protocol.datasets import load
from protocol.spec import SpecError

BYTE_ALPHABET = 256
MIN_VOCAB = BYTE_ALPHABET + 1  # at least one merge: fewer would be a byte model, which the char family is
MAX_VOCAB = 65_536


@functools.cache
def bpe(vocab: int) -> Tokenizer:
    """The tokenizer with `vocab` tokens: the 256 bytes plus the corpus's most frequent merges. The corpus's
    lines are its pre-training documents (a merge never spans a line break, as it never spans a word)."""
    if not MIN_VOCAB <= vocab <= MAX_VOCAB:
        raise SpecError(f"a byte-pair vocabulary has {MIN_VOCAB}–{MAX_VOCAB} tokens, not {vocab}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    text = bytes(load("shakespeare")["tokens"].numpy()).decode("ascii")
    tokenizer.train_from_iterator(text.splitlines(keepends=True), trainer)
    if tokenizer.get_vocab_size() != vocab:
        # The corpus ran out of pairs to merge: a vocabulary that large would be padded with tokens never seen.
        raise SpecError(f"the corpus gives at most {tokenizer.get_vocab_size()} byte-pair tokens, not {vocab}")
    return tokenizer


def encode(text: str, vocab: int) -> torch.Tensor:
    """The token ids of `text` (int32)."""
    return torch.tensor(bpe(vocab).encode(text).ids, dtype=torch.int32)


def decode(ids: torch.Tensor | list[int], vocab: int) -> str:
    return bpe(vocab).decode(ids.tolist() if isinstance(ids, torch.Tensor) else ids)
