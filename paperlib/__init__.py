"""paperlib: the shared code behind the book's chapters.

One small module per paper (``vae``, ...) plus the book's tooling: ``proofs`` checks the
derivations step by step, ``data`` loads datasets, ``train`` seeds and fits, ``plot`` draws.
Importing the package does no work: no downloads, no training.
"""

__version__ = "0.1.0"
