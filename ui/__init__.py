"""QuantTaaS ui."""
