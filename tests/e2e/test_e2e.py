"""End to end with independent clients: kcat reads the trigger topic; the demo command runs as a user runs it."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO, free_port
from kafka_helpers import publish

from streamer import schemas
from streamer.settings import load_settings

pytestmark = pytest.mark.e2e
SCHEMA = json.loads((Path(schemas.__file__).parent / "json_schemas" / "trigger_event.schema.json").read_text())


def kcat() -> str:
    exe = shutil.which("kcat")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kcat (Debian package) is required under CI")
        pytest.skip("kcat not installed")
    return exe


def test_kcat_reads_schema_valid_trigger_events(kafka, prefix, start_worker):
    exe = kcat()
    s = load_settings(bootstrap=kafka.bootstrap, topic_prefix=prefix)
    worker = start_worker(prefix)
    worker.wait_consumed(publish(s, "election-2024"))
    out = subprocess.run([exe, "-b", kafka.bootstrap, "-t", f"{prefix}streamer.triggers.v1", "-C", "-e", "-q",
                          "-o", "beginning", "-f", "%k\t%s\n"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines, "kcat saw no trigger event"
    for ln in lines:
        key, value = ln.split("\t", 1)
        doc = json.loads(value)
        jsonschema.validate(doc, SCHEMA)
        assert key == doc["underlying"] == "SPX"
    assert any(json.loads(ln.split("\t", 1)[1])["rule"] == "election_vol_collapse" for ln in lines)


ELECTION_RULES = {"election_vol_collapse", "vol_control_releveraging", "leveraged_etf_close_buying"}


@pytest.mark.parametrize("scenario,args,expect", [
    ("election-2024", [], ELECTION_RULES),       # the README's demo: the full demo-size scenario
    ("calm", ["--fast"], set()),
])
def test_demo_command(kafka, scenario, args, expect):
    r = subprocess.run([sys.executable, "-m", "streamer.cli", "demo", "--scenario", scenario, *args,
                        "--no-progress", "--metrics-port", str(free_port()), "--bad", "5"],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    fired = set(re.findall(r"^TRIGGER (\w+) ", r.stdout, re.M))
    assert fired == expect, r.stdout[-3000:]
    assert "5 message(s) dead-lettered" in r.stdout, r.stdout[-2000:]
    assert f"{len(re.findall(r'^TRIGGER ', r.stdout, re.M))} trigger event(s)" in r.stdout
