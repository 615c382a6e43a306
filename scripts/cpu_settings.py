"""Environment settings that change PyTorch's CPU numerics as another machine would.

One definition for `make portability` (scripts/portability.py) and `make bench`'s claims table
(bench/claims.py). Each setting changed the weights of a 50-step MLP training run on this kind of
machine, so a printed digit or an asserted comparison that survives all of them is not an accident
of one CPU.
"""

SETTINGS: dict[str, dict[str, str]] = {
    # this machine as it is
    "native": {},
    # MKL and ATen restricted to AVX2 kernels: what a CPU without AVX-512 computes
    "avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "2"},
    # MKL's conditional-numerical-reproducibility path, ATen's non-vectorised kernels, one thread:
    # a different summation order in every reduction
    "default": {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
}

# What `make portability` runs by default: every setting except the one `make test` already ran.
OTHER_CPUS = ["avx2", "default"]
