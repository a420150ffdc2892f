"""Config: schema, YAML loading with line numbers, durations, socket options, profiles."""
