"""`flashtalker speak`: audio -> motion -> FLAME -> Gaussians -> frames -> mp4 (stream.py drives the stages)."""
