"""Serving mode (engine ``openai``): an OpenAI-compatible server measured under load.

``server`` owns a server process the run starts itself, ``server_args`` builds its command
line and environment, ``prometheus`` reads the server's (or an exporter's) metrics.
"""
