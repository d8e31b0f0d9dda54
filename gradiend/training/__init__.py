"""Training a GRADIEND: arguments, batch schedule, convergence, pruning, seeds and the trainer.

Import the classes from their modules (``gradiend.training.arguments``,
``gradiend.training.trainer``, …) or from the top-level ``gradiend`` package; this package file
stays light so that reading the arguments does not load torch models.
"""
