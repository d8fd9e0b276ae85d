"""WebSockets: route handlers (terminal, monitoring, collaboration, job progress)
behind two doors, the local server and API Gateway's WebSocket API. See ``base``."""
