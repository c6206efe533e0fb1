"""Small helpers every part uses: atomic file output and device choice."""
