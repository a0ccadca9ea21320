"""Chromium sends nothing around the egress proxy: WebRTC, DNS prefetch, WebTransport, workers.

Each case runs tests/netns_probe.py in a network namespace of its own (`unshare -rnm`):
loopback, a veth pair with both ends inside (198.18.0.0/15), pages on 127.0.0.1 and
UDP listeners on 127.0.0.2. Nothing it sends can leave that namespace. Every case has
a control that shows the listeners do see traffic when the guard is not there, so a
zero is a real zero. A machine where the namespace cannot be made fails these tests
with the reason; they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ESCAPES = ("stun", "turn", "ice_host", "dns", "webtransport")
PROBE_LIMIT = 150  # seconds for one probe (a Python, a Chromium and pages in a namespace)
# Two probes a test. The limit also deals these tests to the workers' first runs
# (tests/scheduling.py): 15-25 s each, mostly waiting, they ended the run when last.
TWO_PROBES = pytest.mark.timeout(2 * PROBE_LIMIT + 20)
# The binaries installed here, of those the bot looks for first.
BINARIES = {
    kind: path
    for kind, path in (
        ("shell", shutil.which("chromium-headless-shell")),
        ("full", shutil.which("chromium")),
    )
    if path
}
EACH_BINARY = pytest.mark.parametrize("binary", sorted(BINARIES))


def probe(binary: str, *args: str) -> dict[str, Any]:
    """Run the probe in a new user, network and mount namespace; its JSON verdict."""
    command = ["unshare", "--map-root-user", "--net", "--mount"]
    command += [sys.executable, "-m", "tests.netns_probe", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CHROMIUM_PATH": BINARIES[binary]}
    try:
        proc = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=PROBE_LIMIT
        )
    except FileNotFoundError as exc:
        pytest.fail(f"cannot make a network namespace here: {exc} (util-linux `unshare`)")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"the namespace probe failed (exit {proc.returncode}); "
            f"a network namespace is required for this test:\n{proc.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@TWO_PROBES
@EACH_BINARY
def test_webrtc_sends_no_udp_around_the_proxy(binary: str) -> None:
    guarded = probe(binary, "--page", "webrtc")
    assert guarded["captured"], guarded
    assert guarded["text"] == "offer made", guarded  # the page's WebRTC code did run
    assert all(guarded["datagrams"][name] == 0 for name in ESCAPES), guarded
    # The same launch path without the WebRTC switch: STUN, TURN and ICE checks go out.
    bare = probe(binary, "--page", "webrtc", "--without-switch")
    assert bare["text"] == "offer made", bare
    assert bare["datagrams"]["stun"] > 0, bare
    assert bare["datagrams"]["turn"] > 0, bare
    assert bare["datagrams"]["ice_host"] > 0, bare


@TWO_PROBES
@EACH_BINARY
def test_no_other_path_around_the_proxy(binary: str) -> None:
    """DNS prefetch, WebTransport (QUIC) and service workers go nowhere from a capture."""
    guarded = probe(binary, "--page", "bypass")
    assert guarded["captured"], guarded
    assert guarded["datagrams"]["dns"] == 0, guarded
    assert guarded["datagrams"]["webtransport"] == 0, guarded
    assert guarded["service_worker_fetches"] == 0, guarded
    # Control: the same switches without the proxy and with service workers allowed.
    control = probe(binary, "--page", "bypass", "--no-proxy")
    if binary == "full":  # the headless shell prefetches no DNS, proxy or not
        assert control["datagrams"]["dns"] > 0, control
    assert control["datagrams"]["webtransport"] > 0, control
    assert control["service_worker_fetches"] > 0, control


@TWO_PROBES
@EACH_BINARY
def test_remote_browser_without_the_switch_is_refused(binary: str) -> None:
    """A browser server launched with the bot's switches works; one without is refused."""
    remote = probe(binary, "--page", "webrtc", "--remote")
    assert remote["started"] and remote["captured"], remote
    assert remote["text"] == "offer made", remote
    assert all(remote["datagrams"][name] == 0 for name in ESCAPES), remote
    careless = probe(binary, "--page", "webrtc", "--remote", "--without-switch")
    assert careless["started"] is False, careless
    assert "disable_non_proxied_udp" in careless["error"]
    assert all(careless["datagrams"][name] == 0 for name in ESCAPES), careless
