"""A daemon gives the memory of a finished task back to the system (telemetry.memory)."""

from __future__ import annotations

import torch

from telemetry.memory import give_back_free_memory, rss_mb


def test_memory_a_computation_freed_stays_with_the_process_until_it_is_given_back() -> None:
    blocks = [torch.ones(25_000) for _ in range(4000)]  # 100 KB each, under glibc's mmap threshold: heap memory
    survivors = [blocks[i].clone() for i in range(0, len(blocks), 50)]  # scattered: the heap cannot shrink by itself
    del blocks
    freed = rss_mb()
    assert give_back_free_memory()
    assert freed - rss_mb() > 200  # of the 400 MB the blocks took
    assert len(survivors) == 80
