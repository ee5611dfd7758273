"""What the CLI prints or draws from finished runs: the E2 and regime tables, curves, the audit page, the
E6 training-cost bench."""
