"""FlashTalker per-identity adaptation (`flashtalker adapt`): UV-sampled Gaussians on FLAME,
cross-region attention offsets, colour MLP, lip-guided supervision, joint FLAME refinement.

Defaults are the GPU-sized run (512x512, 256^2 UV grid). `adapt_flashtalker.py:cpu` is the
CPU-sized preset; `configs/adapt_gaussianavatars.py` the per-face placement.
"""
import ml_collections

from flashtalker_jax.configs import common


def avatar_task() -> ml_collections.ConfigDict:
    """The task config shared by the adapt presets (each preset overrides fields)."""
    t = ml_collections.ConfigDict()
    t.name = "avatar_adapt"
    t.data = ""                      # VHAP folder (set by --data)
    t.flame = ""                     # FLAME folder; "" = DATA/flame
    t.resolution = 512               # training/eval frames are resized to this square size
    t.batch_size = 1
    t.data_seed = 0
    t.train_splits = ("train",)
    t.eval_splits = ("test", "val")
    t.eval_max_frames = 0            # evaluate the first k held-out frames (0 = all)
    t.use_mask = True                # composite ground truth on `background` with its mask
    t.mask_source = "fg"             # "fg": fg_masks/ (person); "head": head_masks/ of `track`
    t.render_over_frame = False      # real footage: the render is the head alone (adapt_real.py)
    t.train_background = "frame"     # render_over_frame: "random" colour per frame, or "frame"
    t.background = (1.0, 1.0, 1.0)
    t.init_colors_from_frame = True  # template colours from the first training frame
    t.refine_start = 2000            # step where joint FLAME/camera refinement starts (-1: never)
    # Refinement step size relative to optim.lr. Adam moves a table row by ~8 (60 frames) to
    # ~28 (1,600 frames) x lr per visit whatever its gradient (batch 1 visits a row once in
    # N steps): at 0.1 that is ~8 mm / 0.5 deg per visit on news_anchor_71s, and its refined
    # training frames fit worse than their tracked parameters (28.1 vs 30.7 dB); at 0.01 the
    # fit is kept and held-out frames match no refinement (BENCHMARKS.md, refinement on real
    # footage).
    t.refine_lr_scale = 0.01
    # Corrections minus their mean over frames (and cameras): the training frames cannot drift
    # on average from the tracker's convention that held-out frames, speak and eval render
    # with; a monocular clip's one camera gets no correction (its drift cost the mouth box
    # 1.5 dB and the eye box 2.8-4.5 dB on news_anchor_71s's held-out frames).
    t.refine_centered = True

    # GGTalker's prior-initialised adaptation (`flashtalker adapt --prior RUN`, e2v/init.py):
    # the template starts from the e2v prior's UV Gaussian map of one training frame; FLAME
    # stays frozen until refine_start (the map alone first, then jointly). The prior must
    # have been pretrained with this placement and avatar.init_scale_factor.
    t.prior = ml_collections.ConfigDict()
    t.prior.path = ""                # RUN/prior of `pretrain-e2v` ("" = the default initialisation)
    t.prior.sha256 = ""              # of the prior's files: recorded by the adapt job, checked on resume
    t.prior.reference_frame = 0      # row of the training split the map is predicted from
    # Template attributes taken from the map (the rest: the default initialisation) and a
    # floor on its log-scales relative to the initial ones (e2v/init.py condition_template).
    # Without the map's opacities (it hides a fifth of the Gaussians) and with no Gaussian
    # smaller than the initial one, the run ends level with or above from-scratch instead of
    # ~1 dB below (a 120-identity prior, 3 seeds: -0.4 to +1.0 dB; +0.1 to +2.2 at 1/5 of the
    # steps), but its step-0 render is no longer the one-shot avatar; the whole map over-fits
    # once adapted (BENCHMARKS, issue 18).
    t.prior.attributes = ("local_means", "local_log_scales", "local_quats", "color_logits")
    t.prior.min_log_scale = 0.0

    t.placement = ml_collections.ConfigDict()
    t.placement.mode = "uv"          # "uv" (FlashTalker) or "per_face" (GaussianAvatars)
    t.placement.uv_resolution = 256  # UV grid side: about coverage * 256^2 Gaussians
    t.placement.teeth_per_face = 3   # Gaussians on each teeth triangle
    t.placement.upper_masks = ("upper_face", "eye_region", "left_eyeball", "right_eyeball",
                               "forehead")
    t.placement.lower_masks = ("lower_face", "lips")
    t.placement.lip_masks = ("lips",)
    t.placement.per_face_masks = ()  # "per_face": only faces in these masks (empty: all)

    t.avatar = ml_collections.ConfigDict()
    t.avatar.capacity = 0            # static Gaussian capacity (0 = the placement's count)
    t.avatar.init_scale_factor = 0.5  # initial scale (sigma) = factor * spacing between Gaussians
    t.avatar.init_opacity = 0.9
    t.avatar.feature_dim = 32
    t.avatar.feature_init_std = 0.1
    t.avatar.heads = 4
    t.avatar.expr_tokens = 4         # tokens per region made from the expression vector
    t.avatar.offset_hidden = 64
    t.avatar.offset_layers = 2
    t.avatar.offset_scale = 0.1      # deformer outputs are scaled by this (see deform.py)
    t.avatar.color_mlp = True
    t.avatar.color_hidden = 32
    t.avatar.use_audio = True        # lower-face audio token from per-frame log-mel rows
    # "cross_attention" (FlashTalker, avatar/deform.py) or "region_weighted" (Talk2Me,
    # avatar/deform_talk2me.py; configs/adapt_talk2me.py), which reads the block below.
    t.avatar.deformer = "cross_attention"
    t.avatar.talk2me = ml_collections.ConfigDict(dict(
        # Eq. 2 thresholds, metres from the nearest neutral static landmark: eyes, eyeballs,
        # lips and nose lie within 2.5 cm (w_exp = 1); ears (>= 7.6 cm) and 90 % of the
        # scalp and neck (>= 6.3 / 7.3 cm) beyond 6 cm (w_exp = 0) on the procedural head.
        d_near=0.025, d_far=0.06,
        lpe=True,                    # learnable positional encoding (False: NeRF encoding of x)
        region_weights=True,         # False: both branches with weight 1 everywhere
        ear=True,                    # eye-aspect ratios in the expression branch
        index_base=10000.0,          # S(i) bands f_k = base^(-k/K) (the transformer's)
        coord_frequencies=6,         # lpe=False: sin/cos of 2^k pi x, k < this
    ))
    # Per-attribute step size relative to optim.lr (3DGS-style learning-rate groups).
    t.avatar.lr_scale = ml_collections.ConfigDict(dict(
        local_means=1.0, local_log_scales=1.0, local_quats=1.0, opacity_logits=5.0,
        color_logits=2.0, features=1.0))

    t.loss = ml_collections.ConfigDict()
    t.loss.l1 = 0.8
    t.loss.ssim = 0.2
    t.loss.position = 1e-2           # GaussianAvatars binding regularisers
    t.loss.position_threshold = 1.0
    t.loss.scale = 1.0
    t.loss.scale_threshold = 0.6
    t.loss.scale_limit_factor = 2.0  # limit = max(threshold, factor * initial local scale)
    t.loss.lip_anchor = 1e-3         # lip-guided supervision (avatar/losses.py)
    t.loss.lip_silhouette = 0.02
    t.loss.refine = 1e-2             # keeps refined FLAME params near the tracked ones
    t.loss.alpha = 0.0               # |alpha - mask| (render_over_frame needs it; 0 = off)
    t.loss.perceptual = 0.0          # LPIPS weight (0 = off); needs perceptual_weights
    t.loss.perceptual_net = "alex"   # "alex" or "vgg": the network perceptual_weights holds
    t.loss.perceptual_weights = ""   # LPIPS file: lin layers (+ backbone unless the next is set)
    t.loss.perceptual_backbone = ""  # torchvision backbone file ("" = in perceptual_weights)

    # Binding-aware densification and pruning (avatar/densify.py), for the per-face
    # placement; avatar.capacity bounds the Gaussians created over the whole run.
    t.densify = ml_collections.ConfigDict()
    t.densify.enabled = False
    t.densify.interval = 100         # densify/prune every this many steps ...
    t.densify.start = 500            # ... from this step ...
    t.densify.stop = 10000           # ... until this one (no opacity reset from here on)
    t.densify.grad_threshold = 2e-4  # mean image-plane gradient (half-image units, as 3DGS)
    t.densify.split_scale = 0.6      # local scale (triangle units) above which to split, not clone
    t.densify.split_shrink = 1.6     # split: both halves' scales divided by this (3DGS)
    t.densify.min_opacity = 0.005    # prune fainter Gaussians ...
    t.densify.max_scale = 3.0        # ... and larger ones (local scale, triangle units)
    t.densify.opacity_reset_interval = 3000  # 0 = never
    t.densify.opacity_reset_value = 0.01

    t.render = ml_collections.ConfigDict()
    t.render.backend = "auto"        # auto (chunked on CPU, pallas on GPU/TPU), reference, pallas, tiles, chunked
    t.render.intersections_per_gaussian = 8  # static tile-intersection buffer per Gaussian
    t.render.per_tile = 512          # "tiles": entries composited per 16x16 tile (longer raises)
    t.render.tile_chunk = 64         # "tiles": tiles composited at once (memory bound)
    return t


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = avatar_task()
    config.optim = common.optim("adam", 5e-3, warmup_steps=100)
    config.train = common.train(15000, max_nonfinite=20)
    config.mesh = common.mesh()
    return common.with_preset(config, preset, {"cpu": _cpu})


def _cpu(config: ml_collections.ConfigDict) -> None:
    """CPU-sized adaptation: 256x256 frames, a 96^2 UV grid (a few thousand Gaussians), the
    default rasterize backend, a few thousand steps."""
    config.task.resolution = 256
    config.task.placement.uv_resolution = 96
    config.task.avatar.update(feature_dim=16, heads=2, offset_hidden=32, color_hidden=16)
    # "auto" = chunked on CPU: 7.8-9.3x faster fwd+bwd than pallas in interpret mode on a
    # 256x256 avatar frame (BENCHMARKS.md, CPU compositor).
    config.task.render.backend = "auto"
    config.task.refine_start = 1500
    config.train.update(steps=3000, log_every=50, checkpoint_every=500)
    config.optim.warmup_steps = 50
