"""QuantTaaS optimizer."""
