"""coord.client."""
