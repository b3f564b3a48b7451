"""Paper-style tables (and later figures) from the evaluation results."""
