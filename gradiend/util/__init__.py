"""Small helpers shared by every layer: atomic file writes, seeding, logging."""
