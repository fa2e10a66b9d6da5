"""QuantTaaS evals."""
