# Loads the archmatrix plugin when running from a checkout; when the package is installed its
# pytest11 entry point (named like the module) has registered it already and this is a no-op.
pytest_plugins = ["harness.plugin"]
