"""QuantTaaS assistant."""
