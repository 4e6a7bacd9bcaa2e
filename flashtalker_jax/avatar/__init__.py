"""Mesh-embedded Gaussian avatar (FlashTalker's visual model).

binding (GaussianAvatars triangle frames), sampling (UV grid + teeth, or per face), deform
(disentangled cross-region attention, offset and colour MLPs), avatar (template + offsets
-> Gaussians), losses, tile_render (vectorised compositor used by render.backend="tiles"),
adapt* (the trainer task, export/load of avatar folders), evaluate (held-out metrics).
"""
