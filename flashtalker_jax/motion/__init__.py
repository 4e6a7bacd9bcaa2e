"""Audio -> FLAME motion: the GGTalker-style conditional diffusion prior (`a2e_prior`),
GaussianHeadTalk's deterministic Audio2Param baseline (`audio2param`), Talk2Me's Expression
Generator (`talk2me_eg`), GenFaceTalk's audio branch (`genfacetalk_audio`: E_audio feeding the
motion encoder's heads), the diffusion
schedule and DDIM sampler (`diffusion`), long-audio windows (`windows`) and losses."""
