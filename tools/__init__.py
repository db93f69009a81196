"""Interpretability tools over a target model.

Each tool takes a validated input model and returns a typed result with an
effect, a control and a cost. Nothing here imports `agent`.
"""
