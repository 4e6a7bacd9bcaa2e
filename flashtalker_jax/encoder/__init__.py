"""GenFaceTalk's motion encoder: FLAME parameters and the head-to-camera transform from
pixels in one pass (issue 19). camera_code (the transform as the image shows it), model
(MotionEncoder), task (trainer task "motion_encoder"), folder (RUN/encoder), predict,
evaluate (`eval-motion-encoder`), reenact (`flashtalker reenact`)."""
