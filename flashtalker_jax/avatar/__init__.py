"""Mesh-embedded Gaussian avatar (FlashTalker's visual model).

binding (GaussianAvatars triangle frames), sampling (UV grid + teeth, or per face), deform
(disentangled cross-region attention, offset and colour MLPs), avatar (template + offsets
-> Gaussians), densify (binding-aware densification/pruning for per-face placement), losses,
renderer (the inference avatar and the one render function), export (the versioned avatar
folder), frames (an identity's frames in memory), adapt* (the trainer task), evaluate
(held-out metrics), bench (`flashtalker bench avatar`: render FPS by placement).
"""
