"""The check engine: registry, evaluation, fix plans, the guard, the journal and the fix lock."""
