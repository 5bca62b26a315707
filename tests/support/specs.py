"""The small bounty spec files the tests and benches post: one template, the terms as arguments."""

from __future__ import annotations

from protocol.spec import TrainingSpec

TEMPLATE = """\
name = "{name}"
{base_model}rounds = {rounds}
steps_per_task = {steps}
checkpoint_interval = 5
{batch}[model]
family = "mnist-mlp"
params = {{ hidden = {hidden} }}
[data]
shards = {shards}
{dataset}{optimizer}[bounty]
reward = "10"
stake = "{stake}"
coordinator = "{coordinator}"
"""

# A bounty the real stack settles quickly: every task checked, short windows.
FAST_TERMS = """\
segments_per_check = 2
check_probability = 1.0
min_check_probability = {min_check_probability}
challenge_window_s = 5
verify_window_s = {verify_window_s}
quorum = {quorum}
"""


def bounty_toml(
    coordinator: str,
    *,
    name: str = "e2e",
    rounds: int = 2,
    shards: int = 3,
    steps: int = 20,
    hidden: int = 32,
    stake: str = "100",
    fast: bool = True,
    verify_window_s: int = 30,
    quorum: int = 2,
    min_check_probability: float = 0.5,
    batch_size: int | None = 32,
    base_model: str | None = None,
    dataset: str | None = None,
    carry_state: bool = False,
) -> str:
    """A `shardwork bounty post` file for the MNIST MLP; `fast` adds the real stack's quick terms."""
    text = TEMPLATE.format(
        base_model="" if base_model is None else f'base_model = "{base_model}"\n',
        dataset="" if dataset is None else f'dataset = "{dataset}"\n',
        optimizer="[optimizer]\ncarry_state = true\n" if carry_state else "",
        name=name,
        rounds=rounds,
        steps=steps,
        batch="" if batch_size is None else f"batch_size = {batch_size}\n",
        hidden=hidden,
        shards=shards,
        stake=stake,
        coordinator=coordinator,
    )
    return text + (
        FAST_TERMS.format(verify_window_s=verify_window_s, quorum=quorum, min_check_probability=min_check_probability)
        if fast
        else ""
    )


def small_spec(**overrides: object) -> TrainingSpec:
    return TrainingSpec.model_validate(
        {
            "model": {"family": "mnist-mlp", "params": {"hidden": 32}},
            "steps_per_task": 20,
            "checkpoint_interval": 5,
            "batch_size": 32,
            "data": {"shards": 2},
            **overrides,
        }
    )
