"""The sandbox against programs that misbehave: real processes, sockets and limits.

Both isolation modes run where the machine allows them; the namespace mode is
skipped (not faked) where ``unshare`` is refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from common.errors import InvalidInput
from common.sandbox import (
    Limits,
    RunResult,
    Sandbox,
    check_js_syntax,
    namespaces_available,
    run_node_tests,
    run_python_tests,
)

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")
needs_namespaces = pytest.mark.skipif(
    not namespaces_available(), reason="this machine refuses namespaces"
)
MODES = [pytest.param("namespace", marks=needs_namespaces), "fallback"]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real server socket on 127.0.0.1, as a store or the API would have."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    yield server
    server.close()


def marked_processes(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sandboxes of this test go here, apart from any other run's on the machine."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def sandbox_dirs(where: Path) -> list[str]:
    return [p for p in os.listdir(where) if p.startswith("ao-sandbox-")]


@pytest.mark.parametrize("mode", MODES)
def test_server_secrets_are_invisible(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a secret in the server's environment
    monkeypatch.setenv("AO_TEST_SECRET", "s3cr3t")
    code = (
        "import os, sys\n"
        "print('env', sorted(os.environ))\n"
        "print('direct', os.environ.get('AO_TEST_SECRET'))\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit()] + [sys.argv[1]]:\n"
        "    try:\n"
        "        data = open(f'/proc/{pid}/environ', 'rb').read()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if b's3cr3t' in data:\n"
        "        print('LEAK from', pid)\n"
    )
    # When sandboxed code looks in its environment and in every process it can see
    with Sandbox({"peek.py": code}, isolation=mode) as box:
        result = box.run([sys.executable, "peek.py", str(os.getpid())])
    # Then the secret is nowhere
    assert result.ok, result.stderr
    assert result.isolation == mode
    assert "direct None" in result.stdout
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "AO_TEST_SECRET" not in result.stdout


CONNECT_PY = """\
import socket, sys
port = int(sys.argv[1])
try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    print("python: connected")
except OSError as exc:
    print("python: refused", exc)
try:
    import _socket
    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    raw.settimeout(2)
    raw.connect(("127.0.0.1", port))
    print("raw: connected")
except OSError as exc:
    print("raw: refused", exc)
"""

CONNECT_JS = """\
const net = require('net');
try {
  const s = net.connect({ host: '127.0.0.1', port: Number(process.argv[2]) });
  s.on('connect', () => { console.log('node: connected'); s.end(); });
  s.on('error', (e) => console.log('node: refused', e.code));
} catch (e) {
  console.log('node: refused', e.code);
}
"""


def assert_no_connection(listener: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        conn, _ = listener.accept()
        conn.close()


@pytest.mark.parametrize("mode", MODES)
def test_cannot_connect_to_a_loopback_port(mode: str, listener: socket.socket) -> None:
    # Given a server listening on 127.0.0.1
    port = str(listener.getsockname()[1])
    files = {"connect.py": CONNECT_PY, "connect.js": CONNECT_JS}
    with Sandbox(files, isolation=mode) as box:
        # When Python (socket and _socket), node and bash try to connect to it
        py = box.run([sys.executable, "connect.py", port])
        shell = box.run(["bash", "-c", f"echo hi > /dev/tcp/127.0.0.1/{port} && echo connected"])
        js = box.run(["node", "connect.js", port]) if NODE else None
    # Then every attempt fails and the server saw no connection
    assert py.isolation == mode
    assert "python: refused" in py.stdout and "raw: refused" in py.stdout, py.stdout + py.stderr
    assert "connected" not in shell.stdout and shell.exit_code != 0
    if js is not None:
        assert "node: refused" in js.stdout, js.stdout + js.stderr
    assert_no_connection(listener)


def test_fallback_guards_block_python_and_node_without_seccomp(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the fallback with its last line of defence only: the language guards
    monkeypatch.setenv("SANDBOX_SECCOMP", "off")
    port = str(listener.getsockname()[1])
    with Sandbox({"connect.py": CONNECT_PY, "connect.js": CONNECT_JS}, isolation="fallback") as box:
        assert not box.seccomp
        # When Python's socket module and node's net try to connect
        py = box.run([sys.executable, "connect.py", port])
        js = box.run(["node", "connect.js", port]) if NODE else None
    # Then both are refused (the raw _socket module is a documented bypass)
    assert "python: refused" in py.stdout, py.stdout + py.stderr
    if js is not None:
        assert "node: refused" in js.stdout, js.stdout + js.stderr
    assert "raw: connected" in py.stdout  # proves the guard, not the kernel, refused above
    listener.accept()[0].close()  # the bypass's connection
    assert_no_connection(listener)


HANG_PY = """\
import os, subprocess, sys, time
marker = sys.stdin.read().strip()  # not in argv: only the sleepers carry it
subprocess.Popen(["sleep", marker + "1"])
if os.fork() == 0:
    os.setsid()  # leave the process group, as a daemon would
    os.execvp("sleep", ["sleep", marker + "2"])
while True:
    pass
"""


@pytest.mark.parametrize("mode", MODES)
def test_infinite_loop_is_killed_at_the_timeout_with_its_children(mode: str) -> None:
    # Given a program that spins and leaves a child and a daemonised grandchild sleeping
    marker = f"1000.{uuid.uuid4().int % 10**8}"
    seen: list[int] = []
    results: list[RunResult] = []
    with Sandbox({"hang.py": HANG_PY}, isolation=mode) as box:
        runner = threading.Thread(
            target=lambda: results.append(
                box.run([sys.executable, "hang.py"], timeout_s=1.5, stdin=marker)
            )
        )
        # When it runs into the wall timeout
        runner.start()
        while runner.is_alive() and len(seen) < 2:
            seen = marked_processes(marker)
            time.sleep(0.05)
        runner.join(10)
        # Then it is reported as timed out, within a margin
        (result,) = results
        assert result.timed_out and not result.ok
        assert result.exit_code is None and result.signal is not None
        assert 1400 <= result.duration_ms <= 4000
        # And the processes it started existed, and are gone
        assert len(seen) == 2
        assert marked_processes(marker) == []


@pytest.mark.parametrize("mode", MODES)
def test_memory_over_the_limit_fails_without_hurting_the_server(mode: str) -> None:
    code = "data = bytearray(4 * 1024**3)\nprint(len(data))\n"
    with Sandbox({"hog.py": code}, limits=Limits(memory_mb=256), isolation=mode) as box:
        hog = box.run([sys.executable, "hog.py"])
        after = box.run([sys.executable, "-c", "print('still fine')"])
    assert not hog.ok and not hog.timed_out
    assert "MemoryError" in hog.stderr or hog.signal is not None
    assert after.ok and after.stdout.strip() == "still fine"
    assert len(bytearray(64 * 1024**2)) == 64 * 1024**2  # and the server can still allocate


@needs_namespaces
def test_a_fork_bomb_is_contained_by_the_process_limit() -> None:
    # A linear, bounded "bomb": if the limit failed it would still stop at 300.
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 300:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('blocked after', n, exc.errno)\n"
    )
    with Sandbox({"bomb.py": code}, limits=Limits(processes=16)) as box:
        result = box.run([sys.executable, "bomb.py"], timeout_s=20)
        uid = box.uid
    assert result.ok and result.isolation == "namespace"
    assert result.stdout.startswith("blocked after")
    assert int(result.stdout.split()[2]) < 16
    assert result.duration_ms < 10_000  # the sleepers were killed, not waited for
    if uid is not None:
        assert not [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid]


@pytest.mark.parametrize("mode", MODES)
def test_a_file_over_the_size_limit_cannot_be_written(mode: str) -> None:
    code = "with open('big.bin', 'wb') as fh:\n    fh.write(b'x' * (3 * 1024 * 1024))\n"
    with Sandbox({"big.py": code}, limits=Limits(file_size_mb=1), isolation=mode) as box:
        result = box.run([sys.executable, "big.py"])
        size = (box.root / "big.bin").stat().st_size
    assert not result.ok
    assert "File too large" in result.stderr or result.signal is not None
    assert size <= 1024 * 1024


def test_cpu_time_is_limited() -> None:
    with Sandbox({"spin.py": "while True:\n    pass\n"}, limits=Limits(cpu_s=1)) as box:
        result = box.run([sys.executable, "spin.py"], timeout_s=15)
    assert not result.timed_out and result.signal is not None
    assert result.duration_ms < 5000


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_left_behind(mode: str, own_tmp: Path) -> None:
    leak = f"/tmp/ao-sandbox-leak-{uuid.uuid4().hex}"
    code = f"open('here.txt', 'w').write('x')\nopen({leak!r}, 'w').write('x')\n"
    with Sandbox({"leave.py": code}, isolation=mode) as box:
        result = box.run([sys.executable, "leave.py"])
        assert box.read("here.txt") == "x"
        root = box.root
    try:
        assert result.ok, result.stderr
        assert not root.exists() and not root.parent.exists()
        assert sandbox_dirs(own_tmp) == []
        if mode == "namespace":
            # The program's /tmp was its own; the host's has no trace of it.
            assert not os.path.exists(leak)
    finally:
        if os.path.exists(leak):
            os.unlink(leak)


def test_output_is_capped() -> None:
    code = "import sys\nsys.stdout.write('a' * 2_000_000)\nsys.stderr.write('b' * 2_000_000)\n"
    with Sandbox({"loud.py": code}, limits=Limits(output_bytes=1000)) as box:
        result = box.run([sys.executable, "loud.py"])
    assert result.ok and result.output_truncated
    assert len(result.stdout) < 1100 and len(result.stderr) < 1100
    assert result.stdout.startswith("a" * 500) and result.stdout.endswith("a" * 200)
    assert "bytes cut" in result.stdout


def test_stdin_reaches_the_program() -> None:
    with Sandbox(limits=Limits(output_bytes=1_000_000)) as box:
        result = box.run(["cat"], stdin="hello\n" * 50_000)
    assert result.ok and result.stdout.count("hello") == 50_000


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt", ""])
def test_write_refuses_paths_that_leave_the_sandbox(path: str, own_tmp: Path) -> None:
    with pytest.raises(InvalidInput):
        Sandbox({path: "x"})
    assert sandbox_dirs(own_tmp) == []  # the half-made sandbox was removed


def test_write_refuses_a_symlink_the_program_left() -> None:
    outside = tempfile.mkdtemp()
    try:
        with Sandbox() as box:
            box.run(["ln", "-s", outside, "link"])
            box.run(["ln", "-s", os.path.join(outside, "f.txt"), "file-link"])
            with pytest.raises(InvalidInput):
                box.write({"link/owned.txt": "x"})
            with pytest.raises(InvalidInput):
                box.write({"file-link": "x"})
            assert box.read("file-link") is None
        assert os.listdir(outside) == []
    finally:
        shutil.rmtree(outside)


def test_isolation_can_be_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_NETWORK", "fallback")
    with Sandbox() as box:
        assert box.run(["true"]).isolation == "fallback"
    monkeypatch.setenv("SANDBOX_NETWORK", "sideways")
    with pytest.raises(ValueError):
        Sandbox()


CALC = """\
def add(a, b):
    return a + b


def sub(a, b):
    if a > 100:
        return 0
    return a - b
"""

TEST_CALC = """\
import pytest

from calc import add, sub


def test_add():
    assert add(1, 2) == 3


def test_sub_is_wrong():
    assert sub(3, 1) == 5


class TestMore:
    @pytest.mark.parametrize("n", [1, 2])
    def test_n(self, n):
        assert add(n, 0) == n


@pytest.mark.skip(reason="not today")
def test_later():
    pass
"""


def test_run_python_tests_reports_each_test_and_coverage() -> None:
    files = {"calc.py": CALC, "tests/test_calc.py": TEST_CALC, "tests/conftest.py": ""}
    report = run_python_tests(files, coverage=True, limits=Limits(wall_s=30))
    outcomes = {case.name: case.outcome for case in report.cases}
    assert outcomes == {
        "tests/test_calc.py::test_add": "passed",
        "tests/test_calc.py::test_sub_is_wrong": "failed",
        "tests/test_calc.py::TestMore::test_n[1]": "passed",
        "tests/test_calc.py::TestMore::test_n[2]": "passed",
        "tests/test_calc.py::test_later": "skipped",
    }, report.output
    assert (report.passed, report.failed, report.errors, report.skipped) == (3, 1, 0, 1)
    assert not report.ok and report.ran and not report.timed_out
    failure = next(c for c in report.cases if c.outcome == "failed")
    assert "assert 2 == 5" in failure.message
    # Coverage is of the code under test only: 5 of its 6 statements ran, not line 7.
    assert report.coverage == {"calc.py": pytest.approx(83.33, abs=0.01)}
    assert report.missing_lines == {"calc.py": [7]}
    assert report.coverage_total == pytest.approx(83.33, abs=0.01)
    assert report.isolation in ("namespace", "fallback")
    assert report.to_dict()["failed"] == 1


def test_run_python_tests_runs_only_the_selected_tests() -> None:
    files = {
        "calc.py": CALC,
        "test_calc.py": TEST_CALC,
        "test_other.py": "def test_x():\n    1/0\n",
    }
    report = run_python_tests(files, tests=["test_calc.py::test_add"])
    assert [(c.name, c.outcome) for c in report.cases] == [("test_calc.py::test_add", "passed")]
    assert report.ok and report.coverage is None


def test_run_python_tests_reports_a_broken_test_file_and_runs_the_rest() -> None:
    files = {
        "tests/test_broken.py": "import nonexistent_module\n",
        "test_ok.py": "def test_a():\n    pass\n",
    }
    report = run_python_tests(files)
    outcomes = {case.name: case.outcome for case in report.cases}
    assert outcomes == {"tests/test_broken.py": "error", "test_ok.py::test_a": "passed"}
    assert not report.ok and report.errors == 1
    assert "nonexistent_module" in report.cases[0].message + report.cases[1].message


CALC_JS = "exports.add = (a, b) => a + b;\n"
CALC_TEST_JS = """\
const test = require('node:test');
const assert = require('node:assert');
const { add } = require('./calc');

test('adds', () => assert.strictEqual(add(1, 2), 3));
test('is wrong', () => assert.strictEqual(add(1, 2), 4));
test.skip('later', () => {});
test('group', async (t) => {
  await t.test('inner', () => assert.ok(true));
});
"""


@needs_node
def test_run_node_tests_reports_each_test() -> None:
    files = {
        "calc.js": CALC_JS,
        "calc.test.js": CALC_TEST_JS,
        "broken.test.js": "const x = ;\n",
    }
    report = run_node_tests(files, limits=Limits(wall_s=30))
    outcomes = {case.name: case.outcome for case in report.cases}
    assert outcomes == {
        "calc.test.js > adds": "passed",
        "calc.test.js > is wrong": "failed",
        "calc.test.js > later": "skipped",
        "calc.test.js > group > inner": "passed",
        "broken.test.js": "error",
    }, report.output
    assert (report.passed, report.failed, report.errors, report.skipped) == (2, 1, 1, 1)
    wrong = next(c for c in report.cases if c.name.endswith("is wrong"))
    assert "3 !== 4" in wrong.message
    broken = next(c for c in report.cases if c.name == "broken.test.js")
    assert "SyntaxError" in broken.message


@needs_node
def test_run_node_tests_selected_file_passes() -> None:
    files = {"calc.js": CALC_JS, "calc.test.js": CALC_TEST_JS.replace("4));", "3));")}
    report = run_node_tests(files, tests=["calc.test.js"])
    assert report.ok and report.passed == 3 and report.skipped == 1


def test_run_node_tests_without_node_did_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    report = run_node_tests({"a.test.js": "require('node:test')('x', () => {});\n"})
    assert not report.ran and not report.ok and report.cases == []


@needs_node
def test_check_js_syntax() -> None:
    results = check_js_syntax(
        {"good.mjs": "export const y = 1;\n", "bad.js": "const ok = 1;\nlet x = ;\n", "a.py": ""}
    )
    assert set(results) == {"good.mjs", "bad.js"}
    assert results["good.mjs"].ok
    bad = results["bad.js"]
    assert not bad.ok and bad.line == 2 and "SyntaxError" in bad.message
