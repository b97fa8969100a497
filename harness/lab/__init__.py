"""Test labs shipped with the tool: real stand-ins for what a user has elsewhere (sshd hosts in network
namespaces: testhosts.py), used by the harness's own tests and by `archmatrix testhosts`."""
