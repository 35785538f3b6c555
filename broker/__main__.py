from broker.cli.server import main

main()
