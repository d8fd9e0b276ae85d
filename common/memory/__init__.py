"""Semantic memory: code chunks embedded into Qdrant, searched by meaning."""
