"""probekit.store (see docs/)."""
