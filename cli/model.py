"""`shardwork model pull | eval | generate`: a bounty's model out, scored, and (language models) sampled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import DeploymentOpt, JsonOpt, RpcOpt, StoreOpt, cli_app, emit_json, open_session
from cli.common import fail_on_user_errors as _errors

model_app = cli_app(
    help="Get a bounty's trained model (weights, spec and model card) and use it: score it, generate text.",
    no_args_is_help=True,
)
DirArg = Annotated[Path, typer.Argument(help="A directory written by `shardwork model pull`.")]


@model_app.command("pull")
def model_pull(
    bounty_id: int,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write (created if missing).")],
    round_: Annotated[
        int | None,
        typer.Option(
            "--round",
            help="The model that opened this round (default: the latest; the bounty's round count: the final model).",
            min=0,
        ),
    ] = None,
    replay: Annotated[
        int, typer.Option(help="Independently replay up to N committed segments for the card's audit.", min=0)
    ] = 0,
    force: Annotated[bool, typer.Option(help="Replace another model already in --out.")] = False,
    rpc_url: RpcOpt = None,
    deployment: DeploymentOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a bounty's model to --out: model.safetensors (the weights as published, checked against the spec's
    model), spec.json, and its card (model-card.json, README.md): held-out score per round, contributors and
    their accepted tasks, slashes, the audit of every commit's proofs, and every CID, all read from the chain
    and the content store."""
    with _errors(as_json):
        from content.ipfs import open_store
        from delivery.pull import pull, write
        from judge.context import ChainView
        from ledger.index import EventIndex

        session = open_session(rpc_url, deployment)
        location = store or session.settings.store
        index = EventIndex(session.settings.index, session.market)
        if not as_json:
            typer.echo(f"reading bounty {bounty_id} from the chain and its model from {location} …", err=True)
        pulled = pull(index, ChainView(session.market, open_store(location)), bounty_id, round_, replay)
        files = write(pulled, out, force)
        card = pulled.card
        if as_json:
            emit_json({"out": str(out), "files": [str(f) for f in files], "card": card.model_dump(mode="json")})
            return
        from protocol.workloads import REGISTRY

        typer.echo(card.summary())
        typer.echo(f"  weights {card.model_cid} ({len(pulled.weights):,} bytes), written to {out}")
        typer.echo(
            f"  {len(card.contributors)} contributors, {len(card.slashes)} slashes; audit of {card.audit.commits} commits: "
            f"{card.audit.proof_problems_accepted} proof problems in accepted ones, {card.audit.replays} replayed, "
            f"{card.audit.disagreements} verdicts contradicted, {card.audit.unchecked_cheats} unchecked cheats"
        )
        typer.echo(
            f"  next: `shardwork model eval {out}`"
            + (f", `shardwork model generate {out} --prompt TEXT`" if REGISTRY[card.family].generates_text else "")
        )


@model_app.command("eval")
def model_eval(
    directory: DirArg,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Data to score on: a .safetensors file laid out as the family's shards, or (language models) "
            "any text file. Default: the bounty's held-out split, read from the content store by its CID."
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a pulled model with its family's metric (accuracy for classifiers, next-character loss for
    language models): the number the coordinator publishes each round, so they compare."""
    with _errors(as_json):
        from delivery.pull import load_pulled
        from delivery.use import evaluate, read_data

        loaded = load_pulled(directory)
        if data is not None:
            tensors, source = read_data(data, loaded), str(data)
        else:
            from config.settings import load_settings
            from content.ipfs import open_store
            from protocol.tensors import from_bytes

            location = store or load_settings().store
            tensors, source = from_bytes(open_store(location).get(loaded.card.holdout_cid)), "held-out split"
        metric = evaluate(loaded, tensors)
        examples = len(next(iter(tensors.values())))
        if as_json:
            emit_json({"metric_name": loaded.card.metric_name, "metric": metric, "data": source, "examples": examples})
            return
        typer.echo(
            f"{loaded.card.metric_name} {metric:.4f} on {source} ({examples:,} {'tokens' if 'tokens' in tensors else 'examples'})"
        )


@model_app.command("generate")
def model_generate(
    directory: DirArg,
    prompt: Annotated[str, typer.Option(help="Text to continue (default: start a new text).")] = "",
    length: Annotated[
        int,
        typer.Option(
            "--length", "-n", help="Tokens to generate (characters for char-transformer).", min=0, max=100_000
        ),
    ] = 200,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature: 0 always takes the likeliest token.", min=0.0, max=10.0)
    ] = 0.8,
    seed: Annotated[int, typer.Option(help="Seed of the sampling: the same seed gives the same text.", min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Continue --prompt with a pulled language model."""
    with _errors(as_json):
        from delivery.pull import load_pulled
        from delivery.use import generate

        loaded = load_pulled(directory)
        text = generate(loaded, prompt, length, temperature, seed)
        if as_json:
            emit_json({"prompt": prompt, "text": text, "temperature": temperature, "seed": seed})
            return
        typer.echo(prompt + text)
