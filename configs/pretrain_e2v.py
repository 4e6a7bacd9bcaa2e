"""GGTalker's expression-to-visual prior (`flashtalker pretrain-e2v`, task "e2v_prior"):
the Identity-Gaussian Generator trained source-target across identities
(flashtalker_jax/e2v/generator.py, task.py). `flashtalker oneshot --prior RUN` reads it.

Defaults are the GPU-sized run (256 px crops, a 128^2 UV map). Presets:
  cpu          64 px frames, 64^2 map, a few hundred steps: the first measured CPU run
  cpu_long     the cpu sizes, batch 8 and 4,000 steps: the prior measured on 120 procedural
               identities (~10 min on 2 cores), the one that made adapt --prior pay off
  quick        the same sizes, a handful of steps: tests and smoke runs
  genfacetalk  GenFaceTalk's identity learning as the generator (task.generator.kind,
               e2v/identity_encoder.py) instead of GGTalker's UV U-Net; combines with a
               size preset as cpu+genfacetalk, quick+genfacetalk
"""
import ml_collections

from flashtalker_jax.configs import common


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    t = ml_collections.ConfigDict()
    t.name = "e2v_prior"
    t.dataset = ""                   # identity folders (data synth output) or a build-tfds output; --data
    t.flame = ""                     # FLAME folder ("" = DATASET/flame, shared by every identity)
    t.identity_start = 0             # use identities [start, start + max_identities) of the sorted
    t.max_identities = -1            # folder list (-1: all): the rest stay held out for one-shot tests
    t.resolution = 256               # frames resized to this square size (source and target)
    t.batch_size = 4                 # global batch of (source, target) pairs
    t.data_seed = 0
    t.train_splits = ("train",)      # frames pairs are drawn from (held-out frames stay unseen)
    t.background = (1.0, 1.0, 1.0)   # targets composited on it with their masks, as adapt does
    t.mask_source = "fg"             # "head" for tracked real clips (head_masks/ of `track`: the fg
                                     # mask holds the torso); data-synth folders' fg masks are heads
    t.eval_splits = ("test", "val")  # written into one-shot avatars (eval-avatar's held-out frames)

    # Same placement fields as configs/adapt_flashtalker.py: the prior's Gaussians are the
    # one-shot avatar's, so the avatar folder's config reuses this block.
    t.placement = ml_collections.ConfigDict()
    t.placement.mode = "uv"          # the map is read at UV-placed Gaussians: "uv" only
    t.placement.uv_resolution = 128  # Gaussians of the avatar: about coverage * 128^2
    t.placement.teeth_per_face = 3
    t.placement.upper_masks = ("upper_face", "eye_region", "left_eyeball", "right_eyeball", "forehead")
    t.placement.lower_masks = ("lower_face", "lips")
    t.placement.lip_masks = ("lips",)
    t.placement.per_face_masks = ()

    t.generator = ml_collections.ConfigDict()
    t.generator.kind = "uv_unet"     # "uv_unet": GGTalker's (generator.py); "genfacetalk": GenFaceTalk's
                                     # identity learning (identity_encoder.py); both write the same map
    t.generator.map_resolution = 128  # UV map side R (divisible by 4); map texels ~ Gaussians
    t.generator.image_width = 16     # image-encoder channels (local context only: the unwrap aligns)
    t.generator.unet_width = 32      # UV U-Net base width (x2, x4 at the two lower levels)
    t.generator.pos_dim = 8          # learned UV positional embedding channels
    t.generator.image_stride = 1     # average-pool the crop by this before encoding (2-4 at 512 px)
    t.generator.offset_scale = 0.1   # offsets in triangle units; small: early steps stay bound
    t.generator.init_opacity = 0.9   # as adapt's template
    t.generator.init_scale_factor = 0.5  # initial sigma = factor * spacing (as adapt's template)
    # kind="genfacetalk" only (the uv_unet widths above are unused by it, and these by uv_unet):
    t.generator.id_widths = (16, 32, 64, 64)  # identity ConvNet (the motion encoder's): stride-2 levels
    t.generator.id_feature = 128     # its global identity vector
    t.generator.texel_dim = 16       # learned per-texel embedding (the initial Gaussians' features)
    t.generator.mlp_width = 64       # per-texel global / local / fusion MLP width
    t.generator.token_rank = 0       # > 0: rank of a learned mixing across texels before the fusion
                                     # (lets unseen texels read seen ones; 0 = the paper's per-Gaussian form)

    t.loss = ml_collections.ConfigDict()
    t.loss.l1 = 0.8                  # GGTalker / GaussianAvatars photometric mix
    t.loss.ssim = 0.2
    t.loss.offset = 1.0              # L_mu: mean squared local offset (triangle units)
    t.loss.scale = 1.0               # GaussianAvatars scale regulariser (no huge Gaussians)
    t.loss.scale_threshold = 0.6
    t.loss.scale_limit_factor = 2.0
    t.loss.perceptual = 0.0          # LPIPS weight (0 = off); needs perceptual_weights (local file)
    t.loss.perceptual_net = "alex"
    t.loss.perceptual_weights = ""
    t.loss.perceptual_backbone = ""

    t.render = ml_collections.ConfigDict()
    t.render.backend = "auto"        # chunked on CPU, pallas on GPU
    t.render.intersections_per_gaussian = 8
    t.render.per_tile = 512
    t.render.tile_chunk = 64

    config = ml_collections.ConfigDict()
    config.task = t
    config.optim = common.optim("adam", 2e-3, warmup_steps=100, clip_norm=1.0)
    config.train = common.train(20000, log_every=50, checkpoint_every=1000)
    config.mesh = common.mesh()
    return common.with_preset(config, preset, {
        "cpu": _cpu, "cpu_long": _cpu_long, "quick": _quick, "genfacetalk": _genfacetalk,
        "cpu+genfacetalk": lambda c: (_cpu(c), _genfacetalk(c, small=True)),
        "quick+genfacetalk": lambda c: (_quick(c), _genfacetalk(c, small=True, tiny=True))})


def _cpu(config: ml_collections.ConfigDict) -> None:
    """64 px frames and a 64^2 map/placement (~2.5k Gaussians): a step is well under a
    second on 2 cores, so a few hundred steps fit in minutes; warmup shortened to match."""
    t = config.task
    t.resolution = 64                # the synthesiser's test size; the head spans ~40 px
    t.placement.uv_resolution = 64   # ~2.5k Gaussians: enough to cover a 64 px head
    t.generator.map_resolution = 64  # one texel per Gaussian
    t.generator.unet_width = 16      # CPU-sized: 16/32/64 channels
    config.optim.warmup_steps = 20
    config.train.update(steps=300, log_every=25, checkpoint_every=100)


def _cpu_long(config: ml_collections.ConfigDict) -> None:
    """The cpu sizes trained 13x longer on a twice larger batch: a 300-step prior on 6
    identities made a one-shot head of 27.2 dB on an unseen identity and an adaptation
    start that gained nothing; this one on 120 identities 30.0 dB (BENCHMARKS, issue 18)."""
    _cpu(config)
    config.task.batch_size = 8
    config.optim.warmup_steps = 100
    config.train.update(steps=4000, log_every=100, checkpoint_every=500)


def _quick(config: ml_collections.ConfigDict) -> None:
    """The cpu sizes with a 32^2 map/placement and 10 steps: tests and smoke runs."""
    _cpu(config)
    t = config.task
    t.batch_size = 2
    t.placement.uv_resolution = 32
    t.generator.map_resolution = 32
    t.generator.unet_width = 8
    config.optim.warmup_steps = 2
    config.train.update(steps=10, log_every=5, checkpoint_every=5)


def _genfacetalk(config: ml_collections.ConfigDict, small: bool = False, tiny: bool = False) -> None:
    """GenFaceTalk's generator; small: three encoder levels for 64 px crops (an 8 x 8 last
    map, as the 256 px default's four levels leave 16 x 16) and CPU-sized MLPs; tiny: tests."""
    g = config.task.generator
    g.kind = "genfacetalk"
    if small:
        g.id_widths = (16, 32, 64)
        g.id_feature = 64
        g.texel_dim = 8
        g.mlp_width = 32
    if tiny:
        g.id_widths = (8, 16, 16)
        g.id_feature = 32
        g.mlp_width = 16
