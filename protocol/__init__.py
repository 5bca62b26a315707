"""What a volunteer, a verifier and an auditor must agree on bit for bit.

Pure logic and data formats only: no chain, no network. Modules that need torch import it themselves, so
`protocol.cid`, `protocol.merkle` and `protocol.spec` stay light enough for the CLI's `--help`.
"""
