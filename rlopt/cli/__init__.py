"""The ``rlopt`` command: argument parsing only; each subcommand calls the layers below."""
