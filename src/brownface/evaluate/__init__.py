"""Evaluation: verification sets (.bin, LFW pairs), IJB-B/C templates and metrics."""
