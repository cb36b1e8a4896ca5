"""`cxr-edge bench`: this box's speed on its own images (or generated ones)."""

from __future__ import annotations

from pathlib import Path

import click

from cxr_edge.cli.options import make_classifier, model_options


@click.command("bench", short_help="Time this box: latency, images/s, decode vs inference, memory.")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@model_options
@click.option("-n", "count", type=click.IntRange(min=1), default=200, show_default=True, help="Images to time.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output on stdout: a table to read, or JSON for scripts.")
def command(folder, model, threads, allow_unverified, allow_unsigned, count, fmt) -> None:
    """Time each stage and the whole pipeline: latency p50/p95, images/s, decode vs inference, peak memory.

    Without FOLDER it times generated images.

    Example: cxr-edge bench --model bundle/ -n 200
    """
    from cxr_edge.run.bench import format_bench, run_bench

    classifier = make_classifier(model, threads, allow_unverified, allow_unsigned)
    result = run_bench(classifier, folder, count)
    if fmt == "json":
        import json

        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(format_bench(result))
