"""What a volunteer, a verifier and an auditor must agree on bit for bit.

Pure logic and data formats only: no chain, no network. Modules that need torch import it themselves, so
`protocol.cid`, `protocol.merkle` and `protocol.spec` stay light enough for the CLI's `--help`.

Importing this package pins kernel dispatch (protocol/pins.py) before anything can load torch: every room
that trains or replays imports `protocol` in its own `__init__` for that reason.
"""

from protocol.pins import apply_pins

apply_pins()
