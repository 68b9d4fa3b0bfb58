"""Shared test setup of every test folder (tests/*, tools/tests/, experiments/*/tests/): offline,
deterministic, small.

Tests never touch the network: HF_HUB_OFFLINE is set before anything imports huggingface_hub.
Hypothesis draws sizes and seeds (never raw float arrays); the 'ci' profile keeps the example
count small enough for a 2-core machine and turns off the deadline (torch's first call is slow).
"""
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the method files (`import model`) and the package (`import bridgekit`)
sys.path.insert(0, str(ROOT / "tests"))  # tiny.py: the tiny random models the tests of every folder build

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
