"""`flashtalker track`: FLAME tracking of a monocular video (flashtalker_jax/track/).

Every number of the tracker lives here; `--config.a.b=v` overrides any field, and
`--config configs/track.py:quick` picks the preset for tests and previews.
"""
import ml_collections


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Input (data import-video settings, used when VIDEO is a file).
    c.video = ml_collections.ConfigDict()
    c.video.landmarker = "../shared/data/models/face_landmarker.task"
    c.video.segmenter = "../shared/data/models/selfie_segmenter.tflite"
    c.video.min_detection_confidence = 0.5
    c.video.crop_margin = 2.2         # crop side = margin x the largest face extent (hair, neck)
    c.video.crop_size = 512           # the source crop size of talking-head papers
    c.video.png_compress_level = 1

    c.flame = ml_collections.ConfigDict()
    c.flame.n_shape = 100             # identity components fitted (FLAME has 300)
    c.flame.n_expr = 50               # expression components fitted and written

    # Frames without a face: gaps up to this many frames are interpolated; longer gaps are
    # kept out of the splits and reported; more than this share without a face: refused.
    c.max_gap_frames = 12             # 0.48 s at 25 fps: a head turn, a hand across the face
    c.max_missing_share = 0.5
    c.cut_threshold = 0.25            # landmark jump between frames / face size => scene cut
    c.test_share = 1 / 11             # the last 1/11 of frames is the test split
    # `track --init encoder RUN`: start the fit from a motion encoder's prediction
    # (pretrain-motion-encoder run) instead of the frontal neutral head ("" = that default).
    c.init_encoder = ""

    c.fit = ml_collections.ConfigDict()
    f = c.fit
    f.camera_distance = 1.0           # metres, camera on +z (the focal length is fitted)
    f.focal_init_over_width = 2.0     # ~28 deg field of view: a portrait lens
    f.rigid_steps = 300
    f.face_steps = 900
    f.huber_delta = 0.004             # residual (fraction of width) where Huber turns linear (2 px at 512)
    f.w_landmarks = 1e4
    f.w_shape = 1.0                   # chosen on a data-synth identity (BENCHMARKS.md, "Tracking")
    f.w_expr = 0.1
    f.w_jaw = 1.0                     # jaw rotation about y/z: only x opens the mouth
    f.w_jaw_closed = 10.0             # a jaw opening past closed is penalised
    f.w_eyes = 1e-3
    f.w_focal = 1e-2
    f.w_smooth_pose = 10.0
    f.w_smooth_translation = 1e3
    f.w_smooth_jaw = 1.0
    f.w_smooth_expr = 1e-2
    f.w_smooth_eyes = 0.1
    f.acceleration_ratio = 4.0        # acceleration penalty / velocity penalty
    f.learning_rates = {"shape": 0.05, "log_focal": 0.01, "rotation": 0.01, "translation": 0.002,
                        "jaw_pose": 0.01, "eyes_pose": 0.01, "expr": 0.05}
    # Photometric refinement (track/photometric.py), off by default: on a data-synth identity
    # 200 steps moved the face error 4.59 -> 4.55 mm but raised landmark jitter 1.89 -> 2.53 px
    # and tripled the fit time (BENCHMARKS.md, "Tracking"). --config.fit.photo_steps=200 runs it.
    f.photo_steps = 0
    f.photo_size = 128                # render / compare at this square size
    f.photo_batch = 8                 # frames rendered per step (drawn at random)
    f.photo_scale = 0.6               # Gaussian in-plane radius / triangle size
    f.photo_opacity = 0.95
    f.w_photo = 200.0                 # L1 in [0, 1] colour units, vs ~20 for a 2 px landmark fit
    f.photo_colour_lr = 0.05
    f.photo_lr_scale = 0.3            # the landmark fit's learning rates x this (a refinement)
    f.photo_seed = 0
    f.contour_weight = 0.3            # face-oval points slide along the silhouette: trusted less
    f.iris_weight = 1.0

    c.overlay_frames = 12             # frames in the overlay PNG grid
    c.seed = 0
    if preset == "quick":
        f.rigid_steps = 100
        f.face_steps = 300
        c.video.crop_size = 256
    elif preset not in (None, ""):
        raise ValueError(f"unknown preset {preset!r} (known: quick)")
    return c
