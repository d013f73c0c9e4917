"""One training run: its config, environments, agent, evaluation, diagnostics and run folder."""
