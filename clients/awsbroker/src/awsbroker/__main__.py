"""`python -m awsbroker`: the same as the `awsbroker` command."""

from awsbroker.cli import main

main()
