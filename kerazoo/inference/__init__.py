"""Inference on trained models: generate, translate, score, classify and attention maps."""
