"""awsbroker: the employee's command-line client of the federation broker (httpx, typer, the standard library)."""

__version__ = "0.1.0"
