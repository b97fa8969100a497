"""This machine: what it has (doctor), which packages give the rest."""
