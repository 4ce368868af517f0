"""Serving mode: an OpenAI-compatible endpoint measured under load.

- ``schedule``: send times computed up front (Poisson or constant rate, seeded).
- ``client``: the load generator, an async streaming client that follows a schedule (open
  loop) or keeps N requests in flight (closed loop) and records every request (needs httpx;
  imported only on the run path).
- ``tokens``: per-token times and gaps from streamed chunks.

Nothing is imported here, so importing the package stays cheap.
"""
