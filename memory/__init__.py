"""ChromaDB-backed memory of claims, hypotheses, feature labels and experiments."""
