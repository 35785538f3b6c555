"""HTTP layer: thin routers over the broker's services."""
