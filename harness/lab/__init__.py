"""Test labs shipped with the tool: machines made on this one for the harness's own tests and CI — sshd
hosts in network namespaces (testhosts.py, also `archmatrix testhosts`) and a fresh Debian root that runs
the README's commands (freshroot.py, `.ci/run` and `nox -s fresh`)."""
