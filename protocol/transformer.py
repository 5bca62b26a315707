"""The decoder-only transformers the language-model families train: pre-norm blocks with causal attention.

Pure torch modules; which data they read and how they are scored is the families' part (protocol.workloads).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        return x + F.dropout(self.mlp(self.norm2(x)), p, self.training)


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, context: int, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embed, self.position = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads, dropout) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1])
        logits: torch.Tensor = self.head(self.norm(self.blocks(self.embed(tokens) + self.position(positions))))
        return logits


class GPT(nn.Module):
    """GPT-2's shape: learned positions, pre-norm blocks, a final norm, and (by default) an output head that is
    the token embedding itself. Initialised as GPT-2 is (normal, std 0.02; residual projections scaled down by
    √(2·layers)), so a deep stack starts near the identity instead of with exploding activations. Tying is done
    in forward, not by sharing a Parameter: every tensor has one name in checkpoints and updates."""

    def __init__(
        self, vocab: int, context: int, dim: int, heads: int, layers: int, dropout: float, mlp_ratio: int, tied: bool
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.embed, self.position = nn.Embedding(vocab, dim), nn.Embedding(context, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads, dropout, mlp_ratio) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)
        self.head = None if tied else nn.Linear(dim, vocab, bias=False)
        residual_std = 0.02 / math.sqrt(2 * layers)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif "norm" in name:
                nn.init.ones_(p)
            else:
                std = residual_std if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1])
        x = F.dropout(self.embed(tokens) + self.position(positions), self.dropout, self.training)
        x = self.norm(self.blocks(x))
        return F.linear(x, self.embed.weight) if self.head is None else self.head(x)
