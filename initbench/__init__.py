"""initbench: measure how weight initialization changes the training of a small conv net."""

__version__ = "0.1.0"
