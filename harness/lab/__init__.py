"""Test labs shipped with the tool: machines made on this one for the harness's own tests and CI."""
