"""pytest-mlbatch: preflight checks for AWS Batch ML jobs as pytest items."""

__version__ = "0.1.0"
