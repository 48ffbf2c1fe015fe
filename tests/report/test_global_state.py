"""A notebook's matplotlib backend, rcParams and root logger are the user's after probekit ran.

Run in a fresh interpreter: the state must hold from the first import on (another test of the
session may already have imported probekit's figure modules).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import json, logging, sys
    import matplotlib
    matplotlib.use("svg")                     # the user's backend, chosen before probekit
    matplotlib.rcParams["font.size"] = 13.0   # and the user's style
    matplotlib.rcParams["axes.grid"] = False
    root = logging.getLogger()
    root.setLevel(logging.ERROR)
    before = {"backend": matplotlib.get_backend(), "rc": dict(matplotlib.rcParams),
              "level": root.level, "handlers": list(root.handlers)}

    import probekit.bias.figures, probekit.bias.compare, probekit.report  # noqa: F401
    from probekit.bias.analysis import analyze
    from probekit.bias.figures import change_figure
    from probekit.testing.simulate import simulate_results
    from probekit.report import build_report
    import pandas as pd

    out = sys.argv[1]
    df = simulate_results(n_groups=3, speakers_per_group=6, n_layers=3, seeds=(0, 1, 2),
                          train_sets="full", group_offset={"g2": 0.2})
    an = analyze(df, n_boot=20, n_perm=49)
    an.save(out + "/analysis")
    build_report(out + "/analysis", out + "/report", power=False)
    change_figure(pd.DataFrame({"statistic": "difference", "task": "phone", "probe": "lda",
                                "metric": "per", "before": "a", "after": "b", "layer_index": [0, 1],
                                "layer": ["l0", "l1"], "change": [0.1, 0.0], "ci_low": [0.0, -0.1],
                                "ci_high": [0.2, 0.1], "p_fwer": [0.01, 0.5], "n_speakers": 8,
                                "decision": [True, False], "decision_level": 0.05}))
    rc = dict(matplotlib.rcParams)
    changed = sorted(k for k in rc if str(rc[k]) != str(before["rc"].get(k)))
    print(json.dumps({"backend": [before["backend"], matplotlib.get_backend()],
                      "rc_changed": changed,
                      "root_level": [before["level"], root.level],
                      "root_handlers_same": list(root.handlers) == before["handlers"]}))
""")


def test_analysis_and_report_leave_backend_rcparams_and_root_logger_alone(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    env.pop("MPLBACKEND", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["backend"][1] == got["backend"][0] == "svg"
    assert got["rc_changed"] == []
    assert got["root_level"][1] == got["root_level"][0]
    assert got["root_handlers_same"]
    assert (tmp_path / "report" / "report.html").exists()
