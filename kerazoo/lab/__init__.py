"""The lab: bench suites, the leaderboard, learning curves and reports."""
