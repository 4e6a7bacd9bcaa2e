"""Small shared helpers: progress bars, JSON reports and tables, atomic file writes."""
