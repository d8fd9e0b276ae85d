"""Review of changes: on a request, and on pull requests through webhooks."""
