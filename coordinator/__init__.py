"""The coordinator: turns posted bounties into tasks, verifies by replay, aggregates rounds."""
