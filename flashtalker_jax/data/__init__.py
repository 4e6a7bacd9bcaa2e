"""Talking-head data: VHAP-format folders (read/write), procedural speaking identities,
the TFDS builder and grain pipeline for pretraining, and real-video import."""
