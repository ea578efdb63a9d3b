"""coord.plugins."""
