"""Evaluation metrics, each a pure function over explicit arrays (see `registry` for the list).

- image:     psnr, ssim, ms_ssim, mean_abs_error    (frames, (..., H, W, C))
- lpips:     load_lpips / try_load_lpips, lpips_distance (Flax port, user-supplied weights)
- landmarks: FaceLandmarker, track_faces            (MediaPipe 478 landmarks + 52 blendshapes)
- lmd:       lmd, lmd_mouth, lmd_face (FLAME points: render.camera.project_points)
- au:        aue, action_unit_error                 (blendshapes as action units)
- stability: stability_terms, stability_score       (GaussianHeadTalk, documented reading)
- lip:       lve_max_sq_mm2, lve_max_l2_mm, mve_mm, fdd_mm2, mouth_opening, opening_error,
             pearson, cross_correlation, peak_lag, speech_opening_gap
- registry:  METRICS, availability, report_entries  (unavailable metrics reported, never 0)
Submodules are imported explicitly so that importing one metric does not pull in MediaPipe.
"""
