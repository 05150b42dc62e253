"""Smoke runs of the benchmarks, so they never rot. No timing is asserted here:
the figures are for ``benchmarks/README.md``, and this machine's timings are not stable."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from pg_cluster import Cluster

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``benchmarks/<name>.py`` by path (the directory is not a package; the benchmarks
    import their shared ``_common`` from beside them, as when run as scripts)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
class TestQuickRuns:
    @pytest.mark.parametrize(
        "name", ["b1_submit", "b2_polling", "b3_makespan", "b4_scale", "b5_journal", "b6_callbacks"]
    )
    def test_quick_mode_runs_and_reports_its_targets(
        self, name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``main(["--quick"])`` finishes, exits 0 and prints a verdict for each of its targets."""
        module = load(name, monkeypatch)

        assert module.main(["--quick"]) == 0

        out = capsys.readouterr().out
        assert "target" in out
        assert all(
            line.rstrip().endswith(("met", "MISSED"))
            for line in out.splitlines()
            if line.startswith("target")
        ), out

    def test_fleet_quick_mode(
        self, postgres_cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """B7 (workers sharing a batch through PostgreSQL) runs against the tests' throwaway server."""
        module = load("b7_fleet", monkeypatch)

        assert module.main(["--quick", "--dsn", postgres_cluster.dsn]) == 0

        out = capsys.readouterr().out
        verdicts = [line for line in out.splitlines() if line.startswith("target")]
        assert verdicts, out
        assert all(line.rstrip().endswith(("met", "MISSED")) for line in verdicts), out
        assert "2 workers, PostgreSQL journal" in out
