"""The test suite (a regular package, so a third-party top-level ``tests`` package in site-packages,
such as the one torch-fidelity installs, cannot shadow it)."""
