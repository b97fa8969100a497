"""OCI images without a daemon: the distribution API client (client.py), image layouts written by the
harness (layout.py), and port readiness (readiness.py: does every image a release needs exist per arch)."""
