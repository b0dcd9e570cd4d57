"""Training: losses and data for fine-tuning the colorizers and training feed-forward stylizers (no Ray here)."""
