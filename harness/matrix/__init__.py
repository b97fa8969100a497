"""The facts and the cells: THE platform table (platforms.py), per-release facts (kube_versions.py),
matrix.yaml -> Cells (cells.py), the ssh inventory (inventory.py), and the YAML loader both files share."""
