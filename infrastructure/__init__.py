"""Adapters behind the domain's ports, and the composition root."""
