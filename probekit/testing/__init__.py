"""probekit.testing (see docs/)."""
