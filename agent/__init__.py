"""The investigating agent: graph, brains, budget, reports, review, CLI."""
