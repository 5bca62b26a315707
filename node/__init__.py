"""The volunteer: trains its shard into a proof-of-learning trace (trainer) and runs the daemon loop."""

import protocol  # noqa: F401  (pins kernel dispatch before any module of this room loads torch)
