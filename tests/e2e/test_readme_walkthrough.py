"""The README's walk-through, run as written: a new user's path from `stack up` to a committed task."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- walkthrough -->\n```sh\n(.*?)\n```", readme, re.S)
    assert match, "README.md has no walk-through block"
    return match.group(1)


def test_the_readme_walkthrough_takes_a_new_user_from_stack_up_to_a_committed_task(tmp_path: Path) -> None:
    block = walkthrough()
    assert block.splitlines()[0].startswith("./scripts/stack up") and block.splitlines()[-1] == "./scripts/stack down"
    env = {**os.environ, "SHARDWORK_HOME": str(tmp_path / "home")}  # the stack and wallets live there, not in ./
    env.pop("SHARDWORK_PASSWORD", None)
    began = time.time()
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
        )
    finally:  # a line that failed leaves the stack up: it is stopped by PID either way
        subprocess.run(["./scripts/stack", "down"], cwd=ROOT, env=env, capture_output=True, check=False)
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    logs = [json.loads(line) for line in run.stderr.splitlines() if line.startswith('{"ts"')]
    committed = [e for e in logs if e["msg"] == "task committed"]
    assert len(committed) == 1, run.stderr[-3000:]
    out = run.stdout  # doctor exits 1 on a failed check, and `set -e` would have stopped the block there
    assert re.search(r"bounty \d+ +1 claimed, 0 in flight, 1 pending", out), out[-2000:]
    assert "fits its lease" in out
    print(
        json.dumps(
            {
                "walkthrough_s": round(time.time() - began, 1),
                "stack_up_to_commit_s": round(committed[0]["ts"] - began, 1),
            }
        )
    )
