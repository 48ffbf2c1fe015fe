"""studies: configs and thin scripts that run probekit for one paper-style question."""
