"""probekit.bias (see docs/)."""
