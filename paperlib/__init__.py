"""paperlib: the shared code behind the book's chapters.

One small module per paper (``adam``, ``vae``, ``maf``, ...), the quantities several papers share
(``distributions``), the chapters' data (``data``, ``dsprites``, ``distorted_mnist``, ``ring``,
``potentials``) and the book's tooling: ``proofs`` checks the derivations step by step, ``answers``
holds the exercises' expected answers, ``chapter`` sets a chapter up, ``train`` seeds and fits,
``claims`` asserts the experiments' comparisons, ``plot`` draws.
Importing the package does no work: no downloads, no training.
"""

__version__ = "0.1.0"
