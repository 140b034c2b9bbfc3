"""The success + progress reward model, its training and metrics, and the labeler."""
