"""`rlpost bench`: speed and memory claims, measured side by side in one run."""
