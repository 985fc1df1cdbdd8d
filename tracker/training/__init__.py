"""Training: pair sampling from the crop cache, the response-map loss, the training loop and its CLI."""
