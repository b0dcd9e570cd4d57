"""Gatys et al. neural style transfer: losses, optimiser and the stylizer."""
