"""Test helpers that ship with the package (random, never findings):

- :mod:`probekit.testing.tiny_models`: tiny randomly initialised encoders;
- :mod:`probekit.testing.simulate`: results tables and embeddings with planted effects (the
  calibration benchmarks, the tests, and the report's power section simulate with it);
- :mod:`probekit.testing.demo_configs`: the demo pipelines at test size;
- :mod:`probekit.testing.synthetic_store`: an on-disk ``frames`` store written without an
  encoder, of any size (the CTC memory test and benchmark);
- :mod:`probekit.testing.ddp_check`: one training step under DDP vs in one process.
"""
