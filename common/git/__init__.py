"""Git: encrypted host tokens (``credentials``) and syncing projects with remotes (``sync``)."""
