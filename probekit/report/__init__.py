"""probekit.report (see docs/)."""
