"""Ablation harness for AlexNet's tricks (Krizhevsky, Sutskever & Hinton, NIPS 2012)."""

__version__ = "0.1.0"
