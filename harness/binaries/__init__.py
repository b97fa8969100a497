"""Reading binaries: on a node, in ranges (node.py, rangefile.py), and in release artifacts with no node
(release.py). The verdicts on what they read live in checks/."""
