"""Command-line entry points of the server: `broker` (the user CLI `awsbroker` is its own distribution, clients/awsbroker)."""
