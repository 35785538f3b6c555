"""Command-line entry points: `broker` (server side) and `awsbroker` (the user CLI)."""
