"""`shardwork bounty post | list | show | refund`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    DeploymentOpt,
    JsonOpt,
    PasswordFileOpt,
    RpcOpt,
    WalletOpt,
    YesOpt,
    cli_app,
    confirm,
    emit_json,
    fee_of,
    open_session,
)
from cli.common import fail_on_user_errors as _errors
from cli.money import network_fee

bounty_app = cli_app(help="Post training bounties, follow them, and get unspent escrow back.", no_args_is_help=True)
STATUS = ["Open", "Claimed", "Committed", "Challenged", "Accepted"]


@bounty_app.command("post")
def bounty_post(
    spec_file: Annotated[Path, typer.Argument(help="Training spec (TOML or JSON) with a [bounty] table of terms.")],
    wallet: WalletOpt,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    password_file: PasswordFileOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish the spec to the content store, escrow rewards + verifier fees, and post the bounty."""
    with _errors(as_json):
        from cli.common import parse_address
        from content.inputs import load_inputs
        from content.ipfs import open_store
        from judge.calibration import check_replay
        from ledger.amounts import format_amount
        from ledger.terms import load_bounty_file
        from protocol.errors import ShardworkError

        spec, terms = load_bounty_file(spec_file)
        coordinator = parse_address(terms.coordinator)
        session = open_session(rpc_url, deployment, wallet, password_file)
        # A mistyped or foreign coordinator opens no round: the escrow would wait out the deadline for its refund.
        coordinator_seen = session.market.w3.eth.get_transaction_count(coordinator) > 0
        if not coordinator_seen and not yes:
            raise ShardworkError(
                f"coordinator {coordinator} has never sent a transaction on this chain: no round would open and the "
                f"escrow would wait {terms.deadline_days:g} days for its refund; check [bounty] coordinator in "
                f"{spec_file}, or pass --yes for a coordinator that has not started yet"
            )
        calibration = check_replay(spec)  # measures honest cross-CPU divergence on this spec (seconds, then cached)
        store = open_store(session.settings.store)
        # The data and base model the spec names must be in our store and usable, as intake will check: a spec
        # refused there would leave the escrow waiting for a refund.
        inputs = load_inputs(spec, store)
        m, address = session.market, session.address
        tasks = spec.data.shards * spec.rounds
        escrow = terms.escrow(tasks)
        sound = terms.sound
        p_full, p_one = terms.caught_chance(spec.segments, spec.segments), terms.caught_chance(spec.segments, 1)
        lines = [
            f"post bounty '{spec.name}': {spec.model.family}, {spec.data.shards} shards × {spec.rounds} rounds = {tasks} tasks",
            f"  escrow {format_amount(escrow)} tokens = {tasks} × (reward {format_amount(terms.base('reward'))} + "
            f"{terms.quorum} × verifier fee {format_amount(terms.base('verifier_fee'))})",
            f"  economics: detection {p_full:.0%} × slash {format_amount(terms.base('stake'))} "
            f"{'≥' if sound else '<'} reward {format_amount(terms.base('reward'))} for a fully faked task "
            f"({'sound' if sound else 'UNSOUND: cheating would pay'}); one faked segment of {spec.segments} is caught "
            f"with p = {p_one:.0%}",
            f"  data: {_data_line(spec, inputs)}",
        ]
        if terms.detection is not None:
            target = terms.detection
            lines.insert(
                3,
                f"  spot checks: at least {terms.min_check_probability:.2%} of tasks, {terms.segments_per_check} "
                f"segment(s) each: a volunteer faking {target.cheat_fraction:.0%} of its segments is caught with "
                f"{target.probability:.0%} within {target.within_tasks} of its tasks",
            )
        if not coordinator_seen:
            lines.append(f"  coordinator {coordinator} has never sent a transaction on this chain (posted on --yes)")
        if calibration is not None:
            exact = spec.replay.mode == "exact"
            allowed = calibration.tolerance if exact else spec.replay.tolerance
            lines.append(
                f"  across CPUs: honest work lands within {max(calibration.measured.values()):.2g} of a replay; "
                f"{'verifiers in another class' if exact else 'every verifier'} allows {allowed:.2g}; a segment with "
                f"a step skipped lands at {calibration.skipped_step:.2g} and is caught as surely as a faked one"
            )
        if not sound:
            raise ShardworkError(lines[2].strip() + "; raise stake or the check probability (or detection target)")
        balance = m.balance(address)
        if balance < escrow:
            raise ShardworkError(f"balance {format_amount(balance)} is less than the escrow {format_amount(escrow)}")
        confirm([*lines, f"  balance {format_amount(balance)} -> {format_amount(balance - escrow)}"], yes, as_json)
        spec_cid = store.put(spec.canonical_bytes())
        params = terms.posting(spec, spec_cid, m.now())
        signer = session.unlock(password_file)
        signer.ensure_allowance(escrow)
        bounty_id = signer.post_bounty(params)
        result: dict[str, Any] = {
            "bounty_id": bounty_id,
            "spec_cid": spec_cid,
            "escrow": escrow,
            "tasks": tasks,
            "coordinator_seen": coordinator_seen,
            "spot_checks": {
                "check_probability": terms.check_probability,
                "min_check_probability": terms.min_check_probability,
                "segments_per_check": params["segmentsPerCheck"],
                "detection": None if terms.detection is None else terms.detection.model_dump(),
            },
        }
        if calibration is not None:
            result["cross_class"] = {
                "honest_distance": max(calibration.measured.values()),
                "tolerance": calibration.tolerance,
                "skipped_step": calibration.skipped_step,
            }
        emit_json(result) if as_json else typer.echo(
            f"bounty {bounty_id} posted; spec {spec_cid}; escrow {format_amount(escrow)}"
        )


def _data_line(spec: Any, inputs: Any) -> str:
    """What the bounty trains on and from, as the poster confirms it."""
    examples = sum(len(next(iter(shard.values()))) for shard in inputs.shards)
    unit = "tokens" if "tokens" in inputs.holdout else "examples"
    source = f"dataset {spec.data.dataset}" if spec.data.dataset else f"{spec.model.family}'s built-in data"
    start = f"base model {spec.base_model}" if spec.base_model else f"fresh weights (init_seed {spec.init_seed})"
    return (
        f"{source}, {examples:,} {unit} in {len(inputs.shards)} shards, "
        f"{len(next(iter(inputs.holdout.values()))):,} held out; starting from {start}"
    )


def _index(session: Any) -> Any:
    from ledger.index import EventIndex

    index = EventIndex(session.settings.index, session.market)
    index.sync()
    return index


@bounty_app.command("list")
def bounty_list(rpc_url: RpcOpt = None, deployment: DeploymentOpt = None, as_json: JsonOpt = False) -> None:
    """Every bounty on this deployment, with its live status and escrow."""
    with _errors(as_json):
        from ledger.amounts import format_amount

        session = open_session(rpc_url, deployment)
        rows = []
        for event in _index(session).events(names=("BountyPosted",)):
            b = session.market.bounty(int(event.args["bountyId"]))
            rows.append(
                {
                    "bounty_id": b.bounty_id,
                    "poster": b.poster,
                    "status": b.status.name.lower(),
                    "round": b.current_round,
                    "rounds": b.rounds,
                    "shards": b.shards,
                    "escrow": b.escrow,
                    "spec_cid": event.args["specCid"],
                }
            )
        if as_json:
            emit_json({"bounties": rows})
            return
        if not rows:
            typer.echo("no bounties yet: post one with `shardwork bounty post SPEC --wallet NAME`")
        for r in rows:
            typer.echo(
                f"{r['bounty_id']:>4}  {r['status']:<9} round {r['round'] + 1}/{r['rounds']}  {r['shards']} shards  "
                f"escrow {format_amount(r['escrow']):>12}  poster {r['poster']}"
            )


@bounty_app.command("show")
def bounty_show(
    bounty_id: int, rpc_url: RpcOpt = None, deployment: DeploymentOpt = None, as_json: JsonOpt = False
) -> None:
    """One bounty: terms, rounds, and every task with who did what."""
    with _errors(as_json):
        from ledger.amounts import format_amount
        from ledger.market import BountyStatus, TaskStatus, next_deadline, next_move, task_id_of, task_label
        from protocol.errors import ShardworkError

        session = open_session(rpc_url, deployment)
        m = session.market
        b = m.bounty(bounty_id)
        if b.status == BountyStatus.NONE:
            raise ShardworkError(f"bounty {bounty_id} does not exist: see `shardwork bounty list`")
        index = _index(session)
        rounds = [
            {
                "round": int(e.args["round"]),
                "event": e.name,
                "cid": e.args.get("modelCid") or e.args.get("aggregateCid"),
            }
            for e in index.events(bounty_id=bounty_id, names=("RoundOpened", "RoundClosed"))
        ]
        tasks = []
        now = m.now()
        for round_ in range(b.current_round + 1):
            for shard in range(b.shards):
                task_id = task_id_of(bounty_id, round_, shard)
                t = m.task(task_id)
                history = [e.name for e in index.events(task_id=task_id)]
                due = next_move(m.game(task_id)) if t.status == TaskStatus.CONTESTED else next_deadline(t, b)
                tasks.append(
                    {
                        "task": task_label(task_id),
                        "task_id": task_id,
                        "round": round_,
                        "shard": shard,
                        "status": t.status.name.lower(),
                        "volunteer": t.volunteer,
                        "attempt": t.attempt,
                        "history": history,
                        "next": None if due is None else {"what": due[0], "at": due[1], "in_s": due[1] - now},
                    }
                )
        final = next(
            (e.args["finalModelCid"] for e in index.events(bounty_id=bounty_id, names=("BountyFinalized",))), None
        )
        info = {
            "bounty_id": bounty_id,
            "status": b.status.name.lower(),
            "poster": b.poster,
            "coordinator": b.coordinator,
            "escrow": b.escrow,
            "reward_per_task": b.reward_per_task,
            "stake_per_task": b.stake_per_task,
            # A newcomer's tasks are checked at check_bps, decaying with reputation to min_check_bps.
            "check_bps": int(b.raw["checkBps"]),
            "min_check_bps": int(b.raw["minCheckBps"]),
            "segments_per_check": int(b.raw["segmentsPerCheck"]),
            "segments_per_task": b.segments_per_task,
            "rounds": rounds,
            "tasks": tasks,
            "spec_cid": m.spec_cid(bounty_id),
            "final_model": None if final is None else _final_model(session, final),
        }
        if as_json:
            emit_json(info)
            return
        typer.echo(f"bounty {bounty_id} ({info['status']}), spec {info['spec_cid']}, escrow {format_amount(b.escrow)}")
        typer.echo(f"  poster {b.poster}  coordinator {b.coordinator}")
        typer.echo(
            f"  checks: {info['check_bps'] / 100:g}% of a newcomer's tasks, down to {info['min_check_bps'] / 100:g}% "
            f"with reputation; {info['segments_per_check']} of {b.segments_per_task} segments replayed per check"
        )
        for r in rounds:
            typer.echo(f"  round {r['round']}: {r['event']} {r['cid']}")
        if final is not None:
            score = info["final_model"]["metric"]
            measured = "" if score is None else f", held-out {info['final_model']['metric_name']} {score:.4f}"
            typer.echo(f"  final model {final}{measured}: get it with `shardwork model pull {bounty_id} --out DIR`")
        for t in tasks:
            due = t["next"]
            when = "" if due is None else f"  [{due['what']} {_relative(due['in_s'])}]"
            typer.echo(
                f"  task {t['task']:<9} {t['status']:<10} attempt {t['attempt']}  "
                f"{t['volunteer']}  {' > '.join(t['history'])}{when}"
            )


def _final_model(session: Any, manifest_cid: str) -> dict[str, Any]:
    """The final round manifest's CID and, when the content store serves it, the model's held-out score."""
    from content.ipfs import open_store
    from judge.context import MAX_MANIFEST_READ
    from protocol.errors import ShardworkError
    from protocol.manifests import RoundManifest

    try:
        manifest = RoundManifest.parse(open_store(session.settings.store).get(manifest_cid, MAX_MANIFEST_READ))
    except ShardworkError:  # not in our store, or the store is down: the chain's part still shows
        return {"manifest_cid": manifest_cid, "model_cid": None, "metric_name": None, "metric": None}
    return {
        "manifest_cid": manifest_cid,
        "model_cid": manifest.model_cid,
        "metric_name": manifest.metric_name,
        "metric": manifest.metric,
    }


def _relative(seconds: int) -> str:
    if seconds < 0:
        return f"{-seconds} s ago"
    return f"in {seconds} s" if seconds < 120 else f"in {seconds // 60} min"


@bounty_app.command("refund")
def bounty_refund(
    bounty_id: int,
    wallet: WalletOpt,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    password_file: PasswordFileOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Take back escrow no task is owed, once the bounty is finalized or past its deadline."""
    with _errors(as_json):
        from ledger.amounts import format_amount
        from ledger.market import BountyStatus
        from protocol.errors import ShardworkError

        session = open_session(rpc_url, deployment, wallet, password_file)
        b = session.market.bounty(bounty_id)
        if b.status == BountyStatus.NONE:
            raise ShardworkError(f"bounty {bounty_id} does not exist: see `shardwork bounty list`")
        if b.poster != session.address:
            raise ShardworkError(f"only the poster {b.poster} can refund bounty {bounty_id}")
        fee = fee_of(session, session.market.market.functions.refund(bounty_id))
        before = session.market.balance(session.address)
        confirm(
            [
                f"refund unspent escrow of bounty {bounty_id} (holds {format_amount(b.escrow)})",
                f"  {network_fee(fee)}",
            ],
            yes,
            as_json,
        )
        tx = session.unlock(password_file).refund(bounty_id)
        after = session.market.balance(session.address)
        if as_json:
            emit_json({"bounty_id": bounty_id, "refunded": after - before, "gas_used": tx["gasUsed"]})
        else:
            typer.echo(
                f"refunded {format_amount(after - before)}: balance {format_amount(before)} -> {format_amount(after)}"
            )
