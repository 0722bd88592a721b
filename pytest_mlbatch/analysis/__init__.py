"""Pure analysis on plain values: policy evaluation, network paths, security groups, fit, keys, image references."""
