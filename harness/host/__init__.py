"""This machine: what it has and can do (doctor.py), which Debian package gives each program the harness
runs (sysdeps.py), Debian packages for any arch (debian.py), binfmt_misc registration for foreign arches
(binfmt.py)."""
