"""probekit.probes (see docs/)."""
