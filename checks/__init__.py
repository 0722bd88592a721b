"""The check catalog: one module per area; each module registers its checks when imported."""
