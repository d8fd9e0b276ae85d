"""Running git against a remote safely: the URL policy and the token hand-off.

Two rules hold for every command run here:

- A remote must be https or ssh on a public address. ``file://``, loopback,
  private, link-local (169.254.169.254, the cloud metadata service) and other
  reserved addresses are refused, since a URL is caller input and git would
  otherwise fetch from inside our network (SSRF). ``ALLOW_PRIVATE_GIT_HOSTS``
  lifts the address check (the tests serve git on loopback), never the scheme check.
- A token reaches git only through ``GIT_ASKPASS``: a fixed script that prints an
  environment variable set for that one child process. It is never in the remote
  URL (so never in ``.git/config``), never in argv (visible in ``ps``), never in a
  log line; git's own error text is scrubbed of it before it goes anywhere.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.errors import AppError, GitUnavailable, InvalidInput
from common.git.credentials import provider_for
from common.logs import get_logger, scrub

log = get_logger("git")

# scp-like ssh syntax: user@host:path (no scheme). A Windows drive or a local path
# never matches, since a user@ part is required.
_SCP = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")
_TOKEN_ENV = "AO_GIT_TOKEN"
_USER_ENV = "AO_GIT_USERNAME"
# Who the token is presented as: each host documents a user name for token auth.
_USERNAMES = {
    "github": "x-access-token",
    "gitlab": "oauth2",
    "bitbucket": "x-token-auth",
    "generic": "git",
}
_ASKPASS = (
    "#!/bin/sh\n"
    "# Written by common/git/sync.py: git asks for a user name, then a password.\n"
    'case "$1" in\n'
    f"  Username*) printf '%s\\n' \"${_USER_ENV}\" ;;\n"
    f"  *) printf '%s\\n' \"${_TOKEN_ENV}\" ;;\n"
    "esac\n"
)

Resolver = Callable[[str], list[str]]
_PASSED_ENV = frozenset(
    {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND"}
    | {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"}
    # A git that is not where it was built for (the GitLayer under /opt on Lambda)
    # finds its helpers, templates and libraries by these.
    | {"GIT_EXEC_PATH", "GIT_TEMPLATE_DIR", "LD_LIBRARY_PATH"}
)
_NO_GIT = (
    "git is not installed where this worker runs; on AWS the job worker needs the"
    " GitLayer (see the README, Git credentials and sync)"
)
_PASSED_PREFIX = ("GIT_AUTHOR_", "GIT_COMMITTER_")
# Every git process starts here (one place for a test to watch what is spawned).
_spawn = subprocess.run


class GitError(AppError):
    status = 502
    code = "git_failed"


@dataclass(frozen=True)
class Remote:
    """A checked remote URL."""

    url: str
    scheme: str  # "https" or "ssh"
    host: str  # host[:port], lower case, as credentials are keyed


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise InvalidInput(f"the git host {host!r} does not resolve") from exc
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_remote_url(
    url: str, *, allow_private: bool = False, resolve: Resolver = _resolve
) -> Remote:
    """Accept ``url`` as a remote only if it is https/ssh to a public host.

    Parameters
    ----------
    url:
        The remote, as the caller gave it.
    allow_private:
        Skip the address check (``ALLOW_PRIVATE_GIT_HOSTS``; tests on loopback).
    resolve:
        Host name → addresses; injected by unit tests.

    Returns
    -------
    Remote

    Raises
    ------
    InvalidInput
        Another scheme, credentials in the URL, or a host that is (or resolves to)
        a loopback, private, link-local or reserved address.
    """
    text = url.strip()
    scp = _SCP.match(text)
    if scp is not None:
        scheme, hostname, port, password = "ssh", scp["host"].lower(), None, None
    else:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("https", "ssh", "http") or not parts.hostname:
            raise InvalidInput("a git remote must be an https:// or ssh:// URL")
        hostname, password = parts.hostname.lower(), parts.password
        try:
            port = parts.port
        except ValueError as exc:
            raise InvalidInput("the git remote has an invalid port") from exc
    if password is not None:
        # A token in the URL would land in .git/config: store it as a credential instead.
        raise InvalidInput("put the token in /api/git/credentials, not in the remote URL")
    if scheme == "http" and not allow_private:
        raise InvalidInput("a git remote must be an https:// or ssh:// URL")
    if not allow_private:
        addresses = [hostname] if _looks_like_ip(hostname) else resolve(hostname)
        if not addresses or not all(_is_public(a) for a in addresses):
            raise InvalidInput(
                f"the git host {hostname!r} is not a public address",
                details={"setting": "ALLOW_PRIVATE_GIT_HOSTS"},
            )
    host = f"{hostname}:{port}" if port else hostname
    return Remote(url=text, scheme="ssh" if scheme == "ssh" else "https", host=host)


def _looks_like_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def require_git() -> None:
    """Fail early, and plainly, where git cannot run.

    Raises
    ------
    GitUnavailable
        No ``git`` on PATH: the Lambda Python runtime has none without the GitLayer.
    """
    if shutil.which("git") is None:
        raise GitUnavailable(_NO_GIT)


def askpass_script(folder: Path) -> Path:
    """The askpass script under ``folder`` (written once, mode 0700; it holds no secret)."""
    path = folder / "askpass.sh"
    if not path.exists() or path.read_text() != _ASKPASS:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".askpass.{os.getpid()}"
        tmp.write_text(_ASKPASS)
        tmp.chmod(stat.S_IRWXU)
        tmp.replace(path)
    return path


def git_command(args: Sequence[str]) -> list[str]:
    """The argv of one git command: no secret can be in it, the token travels by env.

    ``credential.helper=`` empties the helper list, so no helper of the machine's
    config (``store``, a keychain) is asked for, or writes down, our token.
    """
    # http.followRedirects=false: a public remote must not bounce git to an internal
    # address (the URL check only saw the first host).
    return [
        "git",
        "-c",
        "credential.helper=",
        "-c",
        "core.askPass=",
        "-c",
        "http.followRedirects=false",
        *args,
    ]


def git_env(
    *,
    token: str | None,
    host: str,
    askpass: Path,
    base: dict[str, str] | None = None,
    allow_http: bool = False,
) -> dict[str, str]:
    """The environment of one git command: the token only in ``AO_GIT_TOKEN``.

    ``GIT_ALLOW_PROTOCOL`` keeps git itself (submodules, ``ext::``, ``file://``
    remotes) to the schemes the URL policy accepts.
    """
    # From our own environment git gets only what it needs: not DATABASE_URL,
    # SECRET_KEY or any other secret of this process.
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k in _PASSED_ENV or k.startswith(_PASSED_PREFIX)}
    for name in (_TOKEN_ENV, _USER_ENV, "GIT_ASKPASS", "SSH_ASKPASS"):
        env.pop(name, None)
    env.update(
        GIT_TERMINAL_PROMPT="0",  # never wait on a tty for a password
        GIT_ALLOW_PROTOCOL="https:ssh:http" if allow_http else "https:ssh",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME=env.get("GIT_AUTHOR_NAME", "AI Orchestrator"),
        GIT_AUTHOR_EMAIL=env.get("GIT_AUTHOR_EMAIL", "orchestrator@localhost"),
        GIT_COMMITTER_NAME=env.get("GIT_COMMITTER_NAME", "AI Orchestrator"),
        GIT_COMMITTER_EMAIL=env.get("GIT_COMMITTER_EMAIL", "orchestrator@localhost"),
    )
    if token is not None:
        env.update(
            GIT_ASKPASS=str(askpass),
            **{_TOKEN_ENV: token, _USER_ENV: _USERNAMES[provider_for(host)]},
        )
    return env


def run_git(
    args: Sequence[str],
    *,
    cwd: Path,
    token: str | None = None,
    host: str = "",
    askpass_dir: Path,
    timeout: float = 300.0,
    allow_http: bool = False,
) -> str:
    """Run one git command; its stdout.

    Raises
    ------
    GitError
        git failed or timed out; the message is git's stderr, scrubbed of the token.
    """
    argv = git_command(args)
    env = git_env(
        token=token, host=host, askpass=askpass_script(askpass_dir), allow_http=allow_http
    )
    try:
        done = _spawn(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f} s") from None
    except FileNotFoundError as exc:
        # Also raised for a missing cwd: only a git absent from PATH is "unavailable".
        if shutil.which("git", path=env.get("PATH")) is None:
            raise GitUnavailable(_NO_GIT) from None
        raise GitError(f"git cannot run: {exc.strerror}") from None
    except OSError as exc:
        raise GitError(f"git cannot run: {exc.strerror}") from None
    if done.returncode != 0:
        message = _clean(done.stderr or done.stdout, token)
        log.warning("git failed", extra={"command": args[0], "detail": message})
        raise GitError(f"git {args[0]} failed: {message}")
    return done.stdout


def _clean(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
    return scrub(text.strip())[-2000:]


def clone(
    remote: Remote, dest: Path, *, token: str | None, askpass_dir: Path, timeout: float = 300.0
) -> None:
    """Clone ``remote`` into ``dest`` (which must not exist)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_git(
        ["clone", "--quiet", "--", remote.url, str(dest)],
        cwd=dest.parent,
        token=token,
        host=remote.host,
        askpass_dir=askpass_dir,
        timeout=timeout,
    )


def pull(
    remote: Remote, workdir: Path, *, token: str | None, askpass_dir: Path, timeout: float = 300.0
) -> None:
    """Fast-forward the checked-out branch from ``origin``."""
    run_git(
        ["pull", "--quiet", "--ff-only", "origin"],
        cwd=workdir,
        token=token,
        host=remote.host,
        askpass_dir=askpass_dir,
        timeout=timeout,
    )


def push(
    remote: Remote,
    workdir: Path,
    *,
    branch: str,
    token: str | None,
    askpass_dir: Path,
    timeout: float = 300.0,
) -> None:
    """Push ``branch`` to ``origin``."""
    run_git(
        ["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"],
        cwd=workdir,
        token=token,
        host=remote.host,
        askpass_dir=askpass_dir,
        timeout=timeout,
    )


@dataclass(frozen=True)
class MergeResult:
    merged: bool
    conflicts: list[str]


def merge(workdir: Path, *, ref: str, askpass_dir: Path, commit: bool = True) -> MergeResult:
    """Merge ``ref`` into the checked-out branch; conflicted files are listed, not resolved.

    With ``commit=False`` a clean merge is left staged for the caller to commit.
    """
    args = ["merge", "--no-ff", "--no-edit" if commit else "--no-commit", ref]
    try:
        run_git(args, cwd=workdir, askpass_dir=askpass_dir)
    except GitError:
        out = run_git(
            ["diff", "--name-only", "--diff-filter=U", "-z"], cwd=workdir, askpass_dir=askpass_dir
        )
        conflicts = sorted(p for p in out.split("\0") if p)
        if not conflicts:
            raise
        return MergeResult(merged=False, conflicts=conflicts)
    return MergeResult(merged=True, conflicts=[])
