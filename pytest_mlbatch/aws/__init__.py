"""The only code that talks to AWS: sessions and targets, the inventory, discovery, and lookups through it."""
