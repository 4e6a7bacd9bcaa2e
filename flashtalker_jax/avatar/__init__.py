"""Mesh-embedded Gaussian avatar (FlashTalker's visual model).

binding (GaussianAvatars triangle frames), sampling (UV grid + teeth, or per face), deform
(disentangled cross-region attention, offset and colour MLPs), avatar (template + offsets
-> Gaussians), densify (binding-aware densification/pruning for per-face placement), losses,
adapt* (the trainer task, export/load of avatar folders), evaluate (held-out metrics),
bench (`flashtalker bench avatar`: render FPS by placement).
"""
