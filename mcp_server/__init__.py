"""QuantTaaS tools served three ways from one registry: MCP (stdio and streamable HTTP), HTTP, and the agent.

- :mod:`mcp_server.tools`: the registry (each tool once: name, description, typed args and result, handler).
- :mod:`mcp_server.mcp_app`: the MCP server built from it (``quanttaas mcp`` serves it over stdio).
- :mod:`mcp_server.http_app`: the FastAPI app built from it, with MCP mounted at ``/mcp/`` (``quanttaas serve``).
- :mod:`mcp_server.agent_tools`: OpenAI-style function specs for the agent.
- :mod:`mcp_server.jobs`, :mod:`mcp_server.artifacts`, :mod:`mcp_server.services`: jobs in SQLite, artifacts on
  local disk or an fsspec URL, and the stores the tools act on.

Importing this package is light: the submodules are imported where they are used.
"""
