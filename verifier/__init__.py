"""The verifier: replays the segments the chain sampled and attests (worker), run as a daemon anyone staked can start."""

import protocol  # noqa: F401  (pins kernel dispatch before any module of this room loads torch)
