"""Providers: each turns a Cell into a Node (a machine and the way to run a command on it)."""
