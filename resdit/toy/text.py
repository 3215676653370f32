"""A toy text encoder: word embeddings + one transformer layer, shaped like FLUX's text inputs.

FLUX gives its transformer T5 token states (``encoder_hidden_states``, ``[batch, tokens,
joint_attention_dim]``) and a pooled CLIP vector (``pooled_projections``). The toy encoder
returns both from one small module that is trained jointly with the toy transformer.
"""

from __future__ import annotations

import torch
from torch import nn

from .world import VOCABULARY, VOCABULARY_V1, parse_prompt

MAX_TOKENS = 20  # two objects of 7 words plus "and", padded


def tokenize(prompts: list[str], max_tokens: int = MAX_TOKENS, vocab_size: int = len(VOCABULARY),
             world: str | None = None) -> torch.Tensor:
    """Word ids ``[batch, max_tokens]`` (0 is padding). Prompts are validated by the world's parser; an
    encoder with a smaller vocabulary (v1's) refuses the words it never saw."""
    index = {w: i for i, w in enumerate(VOCABULARY)}
    rows = []
    for p in prompts:
        parse_prompt(p, world)  # raises a PromptError naming unknown words
        ids = [index[w] for w in p.lower().strip().rstrip(".").split()]
        unknown = sorted({VOCABULARY[i] for i in ids if i >= vocab_size})
        if unknown:
            raise ValueError(f"This toy text encoder was trained without the words {unknown} (toy world v1): "
                             "drop them or use a v2 model.")
        if len(ids) > max_tokens:
            raise ValueError(f"Prompt has {len(ids)} words; the toy encoder takes at most {max_tokens}.")
        rows.append(ids + [0] * (max_tokens - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


class ToyTextEncoder(nn.Module):
    """Prompt -> (token states ``[batch, tokens, dim]``, pooled ``[batch, pooled_dim]``)."""

    def __init__(self, dim: int = 64, pooled_dim: int = 64, max_tokens: int = MAX_TOKENS, heads: int = 4,
                 vocab_size: int = len(VOCABULARY_V1), world: str | None = None):
        super().__init__()
        self.config = {"dim": dim, "pooled_dim": pooled_dim, "max_tokens": max_tokens, "heads": heads,
                       "vocab_size": vocab_size, "world": world}
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(max_tokens, dim))
        self.layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                                norm_first=True)
        self.pool = nn.Linear(dim, pooled_dim)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = ids == 0
        x = self.layer(self.embed(ids) + self.position[: ids.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        pooled = self.pool((x * keep).sum(1) / keep.sum(1).clamp_min(1.0))
        return x, pooled

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.position.device
        c = self.config
        return self(tokenize(prompts, c["max_tokens"], c["vocab_size"], c["world"]).to(device))
