"""Measurements, experiments and plots of the engine's networks: what the notebooks show. Nothing in the math,
storage or engine imports them."""
