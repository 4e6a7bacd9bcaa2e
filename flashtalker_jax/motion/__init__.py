"""Audio -> FLAME motion: the GGTalker-style conditional diffusion prior (`a2e_prior`),
GaussianHeadTalk's deterministic Audio2Param baseline (`audio2param`), Talk2Me's Expression
Generator (`talk2me_eg`), the diffusion
schedule and DDIM sampler (`diffusion`), long-audio windows (`windows`) and losses."""
