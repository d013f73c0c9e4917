"""One module per ``rlopt`` subcommand, each with ``register(subparsers)``."""
