from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sim_analysis(tmp_path_factory):
    """A real ``probekit analyze`` folder over a simulated results table (group g2 is planted
    0.3 worse), with its CSV tables and figures."""
    from probekit.testing.simulate import simulate_results
    from probekit.cli import main
    from probekit.probes.results import ResultsTable

    root = tmp_path_factory.mktemp("sim")
    df = simulate_results(n_groups=3, speakers_per_group=8, n_layers=3, seeds=(0, 1, 2, 3),
                          train_sets="full", group_offset={"g2": 0.3})
    ResultsTable(root / "results").append(df)
    assert main(["-q", "analyze", str(root / "results"), "--out", str(root / "analysis"),
                 "--n-boot", "50", "--n-perm", "999"]) == 0
    return root / "analysis"
