"""The `shardwork` command. Commands parse and confirm, then call library code; imports stay lazy so
`--help` answers instantly (no web3, no torch)."""

import protocol  # noqa: F401  (pins kernel dispatch before any module of this room loads torch)
