-- Which REST API a linked project's host speaks, for pull requests, review comments
-- and commit statuses (common/git/hosts.py). Both null: derived from the remote's
-- host (github.com, gitlab.com, bitbucket.org); set for a self-hosted GitLab or
-- GitHub Enterprise, whose API base cannot be guessed safely.
ALTER TABLE projects ADD COLUMN git_host_kind text;
ALTER TABLE projects ADD COLUMN git_api_url text;
