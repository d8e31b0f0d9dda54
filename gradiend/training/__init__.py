"""Training a GRADIEND: arguments, batch schedule, convergence, pruning, seeds and the trainer.
Import from the modules or from ``gradiend``; this file stays empty so arguments load without torch."""
