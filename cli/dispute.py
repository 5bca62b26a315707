"""`shardwork dispute`: challenge one segment of a committed task, posting the bounty's challenge bond."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.common import DeploymentOpt, JsonOpt, PasswordFileOpt, RpcOpt, WalletOpt, YesOpt, open_session
from cli.common import fail_on_user_errors as _errors
from cli.money import Transfer, execute


def register_dispute_command(app: typer.Typer) -> None:
    @app.command()
    def dispute(
        task: Annotated[
            str,
            typer.Argument(
                help="Task: bounty.round.shard (1.0.3, as `shardwork bounty show` lists it), or its number, decimal or 0x-hex."
            ),
        ],
        segment: Annotated[int, typer.Option(help="The segment you say was not trained honestly (0-based).", min=0)],
        wallet: WalletOpt,
        rpc_url: RpcOpt = None,
        deployment: DeploymentOpt = None,
        password_file: PasswordFileOpt = None,
        yes: YesOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Dispute a segment of a committed task while its challenge window is open: the segment is then
        checked by the verifiers whatever the spot-check drew. You post the bounty's challenge bond (and need
        free stake covering its stake per task). Found cheating: your bond comes back with half of the slashed
        stake left after verifier fees. Found honest: your bond goes to the volunteer. You cannot dispute a
        task you committed yourself."""
        with _errors(as_json):
            from ledger.amounts import format_amount
            from ledger.market import TaskStatus, parse_task_id, split_task_id, task_label
            from ledger.tx import call
            from protocol.errors import ShardworkError

            task_id = parse_task_id(task)
            session = open_session(rpc_url, deployment, wallet, password_file)
            m, address = session.market, session.signer
            t = m.task(task_id)
            if t.status != TaskStatus.COMMITTED:
                raise ShardworkError(
                    f"task {task_label(task_id)} is {t.status.name.lower()}: only a committed task can be disputed"
                )
            bounty = m.bounty(split_task_id(task_id)[0])
            # Refused here, before an approval could be sent: the contract would refuse the dispute itself.
            if t.volunteer == address:
                raise ShardworkError(
                    f"{address} committed task {task_label(task_id)}: a volunteer cannot dispute its own work"
                )
            if segment >= bounty.segments_per_task:
                raise ShardworkError(
                    f"task {task_label(task_id)} has segments 0–{bounty.segments_per_task - 1}; segment {segment} does not exist"
                )
            closes = t.deadline + int(bounty.raw["challengeWindow"])
            if m.now() > closes:
                raise ShardworkError(
                    f"task {task_label(task_id)}'s challenge window closed: it can no longer be disputed"
                )
            free = m.stake_of(address).free
            if free < bounty.stake_per_task:
                raise ShardworkError(
                    f"{address} has {format_amount(free)} free stake; disputing needs {format_amount(bounty.stake_per_task)}"
                    " (the bounty's stake per task, as a verifier's): `shardwork stake` first"
                )
            bond = int(bounty.raw["challengeBond"])
            balance = m.balance(address)
            if balance < bond:
                raise ShardworkError(
                    f"balance {format_amount(balance)} is less than the challenge bond {format_amount(bond)}"
                )
            allowance = int(call(m.token.functions.allowance(address, m.market.address)))
            steps = []
            if allowance < bond:  # dispute() would revert on the allowance: estimate the approval instead
                fee_call = m.token.functions.approve(m.market.address, bond)
                steps.append(f"  approve the market to take the {format_amount(bond)} bond first")
            else:
                fee_call = m.market.functions.dispute(task_id, segment)
            lines = [
                f"dispute segment {segment} of task {task_label(task_id)} (committed by {t.volunteer})",
                f"  bond {format_amount(bond)} tokens from {address}: returned with a share of the slash if the "
                "segment was faked, paid to the volunteer if it was honest",
                *steps,
            ]

            def send(signer: Any) -> Any:  # the unlocked Market
                signer.ensure_allowance(bond)
                return signer.dispute(task_id, segment)

            transfer = Transfer(
                "dispute", lines, fee_call, send, ("balance", "free_stake"), fee_note=" per transaction"
            )
            execute(session, transfer, password_file=password_file, yes=yes, as_json=as_json)
