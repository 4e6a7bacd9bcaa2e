"""Procedural speaking identities (`flashtalker data synth`) and data pipeline numbers.

Every number used by flashtalker_jax/data lives here; `--config.a.b=v` overrides any field.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.fps = 25.0
    c.sample_rate = 16000

    # Frames: resolution, camera (fixed, frontal, OpenGL camera-to-world like VHAP exports).
    c.render = ml_collections.ConfigDict()
    c.render.width = 512
    c.render.height = 512
    c.render.supersample = 2          # render at k x resolution, box-filter down (anti-aliasing)
    c.render.camera_distance = 1.2    # metres from the head bounding-box centre along +z
    c.render.focal_over_width = 3.4   # fl_x = fl_y = focal_over_width * width (narrow, portrait lens)
    c.render.background = (1.0, 1.0, 1.0)
    c.render.ambient = 0.45
    c.render.diffuse = 0.65
    c.render.light_dir = (0.3, 0.4, 1.0)   # towards the light, camera-facing, world axes
    c.render.cavity_colour = (0.28, 0.08, 0.08)  # mouth interior seen through open lips
    c.render.dim_back_level = 0.3     # inside of the neck (seen through its cut): albedo x this
    c.render.texture_size = 1024
    c.render.png_compress_level = 6
    c.render.workers = 2              # frame-rendering processes (output identical for any count)

    # Speech (espeak-ng through espeakng-loader); per identity a voice variant, speed, pitch.
    c.speech = ml_collections.ConfigDict()
    c.speech.language = "en"
    c.speech.variants = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                         "klatt", "klatt2", "klatt3", "adam", "anika", "linda", "steph", "robert")
    c.speech.rate_range = (135, 185)    # words per minute
    c.speech.pitch_range = (30, 70)     # espeak 0..100
    c.speech.pause_seconds = 0.25       # silence between sentences
    c.speech.lead_seconds = 0.2         # silence before the first sentence

    # Phoneme -> viseme -> FLAME (jaw angle in radians, expression coefficients).
    c.visemes = ml_collections.ConfigDict()
    c.visemes.tau_seconds = 0.03            # dominance falloff exp(-(d / tau)^2) around a phoneme
    c.visemes.closure_ramp_seconds = 0.03   # bilabial closure envelope ramps
    c.visemes.lead_seconds = 0.02           # mouth shapes anticipate the sound slightly
    c.visemes.expression_scale = 1.0

    # Motion not fully determined by audio: blinks, brows, head rotation/translation.
    c.motion = ml_collections.ConfigDict()
    c.motion.blink_interval_seconds = (2.0, 5.0)
    c.motion.blink_seconds = 0.2
    c.motion.blink_strength = 1.0
    c.motion.brow_noise = 0.25
    c.motion.brow_speech_gain = 0.35
    c.motion.rotation_std = (0.06, 0.09, 0.03)      # radians: pitch, yaw, roll
    c.motion.translation_std = (0.006, 0.004, 0.006)  # metres
    c.motion.motion_seconds = 1.2                     # time scale of head motion
    c.motion.eye_gaze_std = 0.05
    c.motion.neck_share = 0.6        # share of head rotation done by the neck joint (rest global)

    # Identity appearance.
    c.identity = ml_collections.ConfigDict()
    c.identity.shape_std = 1.0          # std of shape coefficients (FLAME units)
    c.identity.num_shape = 20           # first components varied; the rest stay 0
    c.identity.freckles = (150, 600)
    c.identity.wrinkles = (3, 7)

    # Dataset splits: the last sentences are held out (audio never seen in training).
    c.split = ml_collections.ConfigDict()
    c.split.test_sentences = 1
    c.split.val_sentences = 0

    # Windows for pretraining (grain pipeline).
    c.pipeline = ml_collections.ConfigDict()
    c.pipeline.window = 8
    c.pipeline.stride = 8
    c.pipeline.batch_size = 2
    c.pipeline.seed = 0
    c.pipeline.worker_count = 0

    # Real video import.
    c.video = ml_collections.ConfigDict()
    c.video.landmarker = "../shared/data/models/face_landmarker.task"
    c.video.crop_size = 512
    c.video.crop_margin = 1.8      # crop side = margin x face landmark extent
    c.video.min_detection_confidence = 0.5
    c.video.png_compress_level = 1
    return c
