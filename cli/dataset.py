"""`shardwork dataset add`: publish your own training data for a bounty's spec to name by CID."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import JsonOpt, StoreOpt, cli_app, emit_json
from cli.common import fail_on_user_errors as _errors

dataset_app = cli_app(help="Publish your own training data to the content store.", no_args_is_help=True)


@dataset_app.command("add")
def dataset_add(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Text files (UTF-8; joined by line breaks, in this order) for language models, or .safetensors "
            "files laid out as the family's shards (classifiers: x float32 [N, 784] and y int64 class labels).",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    builtin: Annotated[
        str | None,
        typer.Option(
            "--builtin",
            help="Publish a family's built-in dataset instead (mnist or shakespeare): a spec naming it gets the "
            "same shards as one naming none, and nodes need no package to recompute them.",
            metavar="NAME",
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the files, add them to the content store with a manifest naming them, and print the manifest's
    CID: put it in a spec as `data.dataset`. Sharding is then a pure function of the files and the spec that
    anyone can recompute (`shardwork audit bounty` does). Nothing is stored unless every file is usable."""
    with _errors(as_json):
        from config.settings import load_settings
        from content.inputs import publish_builtin, publish_dataset
        from content.ipfs import open_store
        from protocol.spec import SpecError

        if bool(paths) == (builtin is not None):
            raise SpecError("name the files to publish or --builtin NAME: one of the two")
        location = store or load_settings().store
        if builtin is not None:
            cid, manifest, examples = publish_builtin(open_store(location), builtin)
        else:
            cid, manifest, examples = publish_dataset(open_store(location), paths or [])
        count = len(next(iter(examples.values())))
        unit = "tokens" if manifest.kind == "text" else "examples"
        size = sum(f.bytes for f in manifest.files)
        if as_json:
            emit_json(
                {"cid": cid, "kind": manifest.kind, unit: count, "bytes": size, "files": manifest.model_dump()["files"]}
            )
            return
        typer.echo(f"dataset {cid}: {manifest.kind}, {len(manifest.files)} file(s), {size:,} bytes, {count:,} {unit}")
        typer.echo(f'  in {location}; name it in a spec:  [data]  dataset = "{cid}"')
