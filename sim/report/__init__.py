"""Summaries, verdicts, reports and plots."""
