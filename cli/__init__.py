"""The `shardwork` command. Commands parse and confirm, then call library code; imports stay lazy so
`--help` answers instantly (no web3, no torch)."""
