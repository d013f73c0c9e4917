"""What users write, as frozen validated types: YAML, agent and suite files, claims, study files."""
