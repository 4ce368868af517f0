"""Serving mode (engine ``openai``): an OpenAI-compatible endpoint measured under load.

- ``schedule``: send times computed up front (Poisson or constant rate, seeded).
- ``client``: the load generator, an async streaming client that follows a schedule (open
  loop) or keeps N requests in flight (closed loop) and records every request (needs httpx;
  imported only on the run path).
- ``tokens``: per-token times and gaps from streamed chunks.
- ``records``: a request as the result records it, and the JSONL file of the records.
- ``session``: opening the endpoint (managed server, reachability, served model).
- ``server``: owns a server process the run starts itself; ``server_args`` builds its
  command line and environment; ``prometheus`` reads the server's (or an exporter's) metrics.

Nothing is imported here, so importing the package stays cheap.
"""
