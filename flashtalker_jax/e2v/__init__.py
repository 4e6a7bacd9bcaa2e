"""GGTalker's expression-to-visual prior: Identity-Gaussian Generator, its source-target
training task and one-shot avatars (issue 18)."""
