"""QuantTaaS mcp_server."""
