"""Head pose from audio (Talk2Me's Retrieval-Based Pose Generator, issue 20).

database.py  the audio-pose database of one identity, cut in N-frame windows
retrieval.py audio window encoder, cosine retrieval (one matrix product), seamless stitching
refiner.py   the Pose Refiner (Kronecker fusion, cross-attention to audio, residual decoder)
             with its dual-branch discriminator, and the trainer task "pose_refiner"
folder.py    AVATAR/pose/ (database + refiner + config.json) and the PoseGenerator that
             speak --pose generated runs
"""
