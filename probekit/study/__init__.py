"""Studies: a TOML config runs the whole flow (corpus, stores, probe grids, bias analysis,
report) for one paper-style question; ``probekit study run CONFIG`` and ``probekit demo``
are thin wrappers around :func:`run_study`."""

from probekit.study.config import (EncoderSpec, StudyConfig, StudyConfigError, TaskSpec,
                                   config_from_dict, load_config)
from probekit.study.run import StudyError, StudyRun, run_study

__all__ = ["EncoderSpec", "StudyConfig", "StudyConfigError", "TaskSpec", "config_from_dict",
           "load_config", "StudyError", "StudyRun", "run_study"]
