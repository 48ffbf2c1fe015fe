"""Reports: a plain-words summary, figures and tables of a bias analysis, with the run's
configuration and fingerprints, as self-contained HTML and markdown (``probekit report``)."""

from probekit.report.build import banners, build_report, group_error_table
from probekit.report.summary import findings_note, summary_points

__all__ = ["build_report", "banners", "group_error_table", "findings_note", "summary_points"]
