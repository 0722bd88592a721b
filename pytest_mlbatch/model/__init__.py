"""The facts of one target that checks decide over: what to check (scope) and the resources each check runs on."""
