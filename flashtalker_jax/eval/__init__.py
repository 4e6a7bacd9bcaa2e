"""`flashtalker eval`: an avatar (and a motion model) scored on self- and cross-reenactment.

- render:  load_eval_renderer  (avatar folder -> frames + projected FLAME landmarks + meshes)
- drive:   Driving, heldout_frames, tracked_driving, audio_driving, source_driving
- scores:  score_self, score_cross (metric values per driving; flashtalker_jax.metrics)
- table:   metric_table (the paper-style table, unavailable metrics marked)
- plots:   save_frame_grid, save_curves
- run:     evaluate (the whole command, report dict + PNGs)
"""
