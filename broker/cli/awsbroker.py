"""`awsbroker`: the employee's CLI. A client only: it imports httpx/typer and the delivery
formats, never the server side (connectors, minting, db, web)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Get AWS credentials from the federation broker.")


@app.command()
def version() -> None:
    """Print the version."""
    from broker import __version__

    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
