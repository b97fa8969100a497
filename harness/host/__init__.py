"""This machine: which Debian packages the harness needs (sysdeps.py), Debian packages for any arch
(debian.py), binfmt_misc registration for foreign arches (binfmt.py)."""
