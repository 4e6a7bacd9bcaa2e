"""Procedural speaking identities: espeak-ng speech with phoneme timings, visemes, motion,
procedural textures, and an independent textured-mesh renderer for ground-truth frames."""
