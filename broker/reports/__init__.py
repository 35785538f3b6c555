"""Reports computed from the directory and the mapping (the access report)."""
