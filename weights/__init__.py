"""Shipped model weights (installed as the package data `tracker.weights`); see MODEL_CARD.md."""
