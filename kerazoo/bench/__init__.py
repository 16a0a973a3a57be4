"""``kerazoo bench``: speed measured side by side with a peer, in one run."""
