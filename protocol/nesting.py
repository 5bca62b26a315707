"""Nesting depth of untrusted JSON/TOML text, measured before any recursive parser sees it.

CPython's json and tomllib recurse once per nesting level. A header of 100,000 '[' is refused by the
recursion limit in a quiet process, but in a process whose limit was raised, or whose thread has a smaller
C stack, the same bytes overflow the C stack and kill it with SIGSEGV (seen in the full test run). Counting
brackets outside strings is linear, allocation-light, and cannot crash.
"""

from __future__ import annotations

import re
from itertools import accumulate

# Quoted strings of JSON and TOML (basic and literal): brackets inside them do not nest.
_STRINGS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def nesting_depth(text: str) -> int:
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(_STEP[ord(c)] for c in brackets), default=0)
