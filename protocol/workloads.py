"""Model families a bounty can train. Adding one is one registered class; nothing else changes.

A family names its dataset, validates its own hyperparameters, builds the model, samples a batch from a
shard (with torch's global generator, which the training step seeds per step), computes the loss, and
evaluates a model on held-out data.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from protocol import tokenizer
from protocol.datasets import MAX_SHARD_BYTES, ascii_tokens, split_data
from protocol.spec import DataSpec, ModelSpec, SpecError
from protocol.tensors import Tensors
from protocol.tokenizer import MAX_VOCAB, MIN_VOCAB
from protocol.transformer import GPT, CharTransformer

Batch = tuple[torch.Tensor, torch.Tensor]


class Workload:
    family: ClassVar[str]
    dataset: ClassVar[str]
    metric_name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    generates_text: ClassVar[bool] = False
    Params: ClassVar[type[BaseModel]]

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def sample_batch(self, shard: Tensors, batch_size: int) -> Batch:
        raise NotImplementedError

    def meta_batch(self, batch_size: int) -> Batch:
        """A batch's shapes and dtypes without data (torch's meta device): what protocol.footprint measures."""
        raise NotImplementedError

    def synthetic_shard(self, generator: torch.Generator) -> Tensors:
        """A small shard of random data in the real shards' format: what the numeric fingerprint trains on
        (protocol.numerics), so it needs no dataset and is the same on every machine."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, holdout: Tensors) -> float:
        raise NotImplementedError

    def check_data(self, data: Tensors) -> None:
        """Refuses, in one line, data not laid out as this family's shards are (the tensors' names, dtypes and
        per-example shapes; a synthetic shard shows them): what evaluating someone's own data needs first."""
        expected = self.synthetic_shard(torch.Generator().manual_seed(0))
        if set(data) != set(expected):
            raise SpecError(f"{self.family} data holds tensors {sorted(expected)}; this holds {sorted(data)}")
        for name, reference in expected.items():
            t = data[name]
            if t.dtype != reference.dtype or t.shape[1:] != reference.shape[1:]:
                wanted = ", ".join(["N", *map(str, reference.shape[1:])])
                raise SpecError(
                    f"tensor {name!r} is {t.dtype} {list(t.shape)}; {self.family} wants {reference.dtype} [{wanted}]"
                )
        if len({len(t) for t in data.values()}) > 1:
            raise SpecError(f"the tensors {sorted(data)} disagree on the number of examples")
        if any(len(t) == 0 for t in data.values()):
            raise SpecError("the data holds no examples")

    def split(self, data: Tensors, spec: DataSpec) -> tuple[list[Tensors], Tensors]:
        """The data's shards and holdout (protocol.datasets.split_data), each checked to be usable by this
        family and small enough to hold: a shard nobody could train on is refused at post and intake, never
        met by a volunteer."""
        self.check_data(data)
        shards, holdout = split_data(data, spec)
        for label, part in [
            *((f"shard {i} of {len(shards)}", s) for i, s in enumerate(shards)),
            ("the holdout", holdout),
        ]:
            try:
                self.check_data(part)
            except SpecError as exc:
                raise SpecError(f"{label}: {exc} (fewer shards, more data, or another holdout_fraction)") from None
            size = sum(t.numel() * t.element_size() for t in part.values())
            if size > MAX_SHARD_BYTES:
                raise SpecError(
                    f"{label} would hold {size / 2**20:.0f} MiB, over the protocol's {MAX_SHARD_BYTES >> 20} MiB "
                    "a volunteer holds in memory: use more shards"
                )
        return shards, holdout

    def data_from_text(self, text: bytes) -> Tensors:
        raise SpecError(f"{self.family} does not read text: give it a .safetensors file laid out as its shards")

    def generate(self, model: nn.Module, prompt: str, length: int, temperature: float, seed: int) -> str:
        raise SpecError(f"{self.family} is not a language model: it generates no text")


REGISTRY: dict[str, type[Workload]] = {}


def register(cls: type[Workload]) -> type[Workload]:
    REGISTRY[cls.family] = cls
    return cls


def resolve(model: ModelSpec) -> Workload:
    cls = REGISTRY.get(model.family)
    if cls is None:
        raise SpecError(f"model.family {model.family!r} is not one of: {', '.join(sorted(REGISTRY))}")
    try:
        return cls(cls.Params.model_validate(model.params))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(f"model.params.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Classifier(Workload):
    dataset = "mnist"
    metric_name = "accuracy"
    higher_is_better = True
    CLASSES = 10

    def sample_batch(self, shard: Tensors, batch_size: int) -> Batch:
        idx = torch.randint(len(shard["y"]), (batch_size,))
        return shard["x"][idx], shard["y"][idx]

    def meta_batch(self, batch_size: int) -> Batch:
        return torch.empty(batch_size, 784, device="meta"), torch.empty(batch_size, dtype=torch.long, device="meta")

    def synthetic_shard(self, generator: torch.Generator) -> Tensors:
        return {"x": torch.rand(256, 784, generator=generator), "y": torch.randint(10, (256,), generator=generator)}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)

    def check_data(self, data: Tensors) -> None:
        super().check_data(data)
        labels = data["y"]
        if int(labels.min()) < 0 or int(labels.max()) >= self.CLASSES:
            raise SpecError(
                f"labels y must be classes 0–{self.CLASSES - 1}; this data has {int(labels.min())}–{int(labels.max())}"
            )
        if not bool(torch.isfinite(data["x"]).all()):
            raise SpecError("the inputs x hold NaN or Inf")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, holdout: Tensors) -> float:
        model.eval()
        try:
            predicted = model(holdout["x"]).argmax(dim=1)
        finally:
            model.train()
        return float((predicted == holdout["y"]).float().mean())


@register
class MnistMLP(_Classifier):
    family = "mnist-mlp"

    class Params(_Params):
        hidden: int = Field(128, ge=1, le=4096, description="width of the hidden layer")
        dropout: float = Field(0.0, ge=0, lt=1)

    params: Params

    def build_model(self) -> nn.Module:
        p = self.params
        return nn.Sequential(nn.Linear(784, p.hidden), nn.ReLU(), nn.Dropout(p.dropout), nn.Linear(p.hidden, 10))


@register
class MnistCNN(_Classifier):
    family = "mnist-cnn"

    class Params(_Params):
        channels: int = Field(8, ge=1, le=256)
        hidden: int = Field(64, ge=1, le=4096)

    params: Params

    def build_model(self) -> nn.Module:
        c, h = self.params.channels, self.params.hidden
        return nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, c, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * c * 49, h),
            nn.ReLU(),
            nn.Linear(h, 10),
        )


class _LanguageModel(Workload):
    """Next-token prediction on a stream of token ids: batches are random windows of `context` tokens, the
    metric is the mean cross-entropy (nats per token) over fixed held-out windows."""

    dataset = "shakespeare"
    metric_name = "loss"
    higher_is_better = False
    generates_text = True
    EVAL_WINDOWS = 64
    TOKEN_DTYPE: ClassVar[torch.dtype]

    class Params(_Params):
        context: int = Field(64, ge=2, le=1024)
        dim: int = Field(64, ge=8, le=1024)
        heads: int = Field(4, ge=1, le=32)
        layers: int = Field(2, ge=1, le=24)
        dropout: float = Field(0.0, ge=0, lt=1)

    params: Params

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        if self.params.dim % self.params.heads:
            raise SpecError(f"model.params.dim ({self.params.dim}) must be a multiple of heads ({self.params.heads})")

    @property
    def vocab(self) -> int:
        raise NotImplementedError

    def encode(self, text: bytes) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, tokens: torch.Tensor) -> str:
        raise NotImplementedError

    def _windows(self, tokens: torch.Tensor, starts: torch.Tensor) -> Batch:
        offsets = starts[:, None] + torch.arange(self.params.context + 1)
        windows = tokens[offsets].long()
        return windows[:, :-1], windows[:, 1:]

    def sample_batch(self, shard: Tensors, batch_size: int) -> Batch:
        tokens = shard["tokens"]
        return self._windows(tokens, torch.randint(len(tokens) - self.params.context - 1, (batch_size,)))

    def meta_batch(self, batch_size: int) -> Batch:
        shape = (batch_size, self.params.context)
        return torch.empty(shape, dtype=torch.long, device="meta"), torch.empty(shape, dtype=torch.long, device="meta")

    def synthetic_shard(self, generator: torch.Generator) -> Tensors:
        size = 8 * (self.params.context + 1)
        return {"tokens": torch.randint(self.vocab, (size,), generator=generator, dtype=self.TOKEN_DTYPE)}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x).reshape(-1, self.vocab), y.reshape(-1))

    def check_data(self, data: Tensors) -> None:
        super().check_data(data)
        tokens = data["tokens"]
        if len(tokens) < self.params.context + 2:
            raise SpecError(
                f"{len(tokens)} tokens is too short: the model reads {self.params.context} at a time "
                f"and predicts the next, so it needs at least {self.params.context + 2}"
            )
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= self.vocab:
            raise SpecError(f"token ids must be 0–{self.vocab - 1} ({self.family}); this data has {low}–{high}")

    def data_from_text(self, text: bytes) -> Tensors:
        return {"tokens": self.encode(text)}

    @torch.no_grad()
    def generate(self, model: nn.Module, prompt: str, length: int, temperature: float, seed: int) -> str:
        """`length` tokens after `prompt`, each sampled from the model's next-token distribution at
        `temperature` (0: always the likeliest) with a generator seeded by `seed`, so a run repeats exactly."""
        tokens = self.encode(prompt.encode()).long()
        if len(tokens) == 0:
            tokens = self.encode(b"\n").long()  # a text's start: what follows a line break
        generator = torch.Generator().manual_seed(seed)
        model.eval()
        try:
            for _ in range(length):
                logits = model(tokens[-self.params.context :][None])[0, -1].double()
                if temperature == 0:
                    following = logits.argmax().view(1)
                else:
                    following = torch.multinomial(torch.softmax(logits / temperature, dim=0), 1, generator=generator)
                tokens = torch.cat([tokens, following])
        finally:
            model.train()
        return self.decode(tokens[len(tokens) - length :])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, holdout: Tensors) -> float:
        tokens = holdout["tokens"]
        span = len(tokens) - self.params.context - 1
        starts = torch.linspace(0, span, self.EVAL_WINDOWS).long()  # fixed windows: comparable across rounds
        model.eval()
        try:
            loss = self.loss(model, self._windows(tokens, starts))
        finally:
            model.train()
        return float(loss) if math.isfinite(float(loss)) else float("inf")


@register
class ShakespeareLM(_LanguageModel):
    """A character-level transformer: one token per byte, a 128-symbol vocabulary (non-ASCII bytes read '?')."""

    family = "char-transformer"
    TOKEN_DTYPE = torch.uint8

    @property
    def vocab(self) -> int:
        return 128

    def build_model(self) -> nn.Module:
        p = self.params
        return CharTransformer(self.vocab, p.context, p.dim, p.heads, p.layers, p.dropout)

    def encode(self, text: bytes) -> torch.Tensor:
        return ascii_tokens(text)

    def decode(self, tokens: torch.Tensor) -> str:
        return bytes(tokens.tolist()).decode("ascii")


@register
class GPTLM(_LanguageModel):
    """A GPT-style decoder-only transformer over byte-pair tokens (protocol.tokenizer): the family for language
    models of real size (a 25M-parameter one: dim 512, layers 7, vocab 8192). Its data are token ids (int32);
    text, whether a published dataset's or a file given to `model eval`, is tokenized on the way in, so the
    shards a coordinator publishes hold ids and every volunteer trains on exactly those."""

    family = "gpt"
    TOKEN_DTYPE = torch.int32

    class Params(_LanguageModel.Params):
        context: int = Field(64, ge=2, le=4096, description="tokens the model reads at a time")
        dim: int = Field(128, ge=8, le=4096, description="width of the residual stream")
        heads: int = Field(4, ge=1, le=64)
        layers: int = Field(4, ge=1, le=96)
        vocab: int = Field(4096, ge=MIN_VOCAB, le=MAX_VOCAB, description="byte-pair tokens, the 256 bytes included")
        mlp_ratio: int = Field(4, ge=1, le=16, description="hidden width of each block's MLP, in multiples of dim")
        tie_embeddings: bool = Field(True, description="the output head is the token embedding (GPT-2)")

    params: Params

    @property
    def vocab(self) -> int:
        return self.params.vocab

    def build_model(self) -> nn.Module:
        p = self.params
        return GPT(p.vocab, p.context, p.dim, p.heads, p.layers, p.dropout, p.mlp_ratio, p.tie_embeddings)

    def encode(self, text: bytes) -> torch.Tensor:
        return tokenizer.encode(text.decode("utf-8", errors="replace"), self.vocab)

    def decode(self, tokens: torch.Tensor) -> str:
        return tokenizer.decode(tokens, self.vocab)

    def split(self, data: Tensors, spec: DataSpec) -> tuple[list[Tensors], Tensors]:
        """Text (bytes, as a published text dataset or the built-in corpus decode) is tokenized first; data
        already given as int32 ids is split as it is."""
        tokens = data.get("tokens")
        if set(data) == {"tokens"} and tokens is not None and tokens.dtype == torch.uint8:
            data = {"tokens": self.encode(tokens.numpy().tobytes())}
        return super().split(data, spec)
