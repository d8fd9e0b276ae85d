"""Agents: turn a code task into model calls, and never trust the answer unchecked."""
