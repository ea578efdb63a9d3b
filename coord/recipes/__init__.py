"""coord.recipes."""
