"""Pallas tile kernels for the Gaussian rasterizer (forward and backward).

binning.py     tile grid, tile intersections + (tile, depth) sort into a static buffer
reference.py   plain-JAX compositor (lax.scan over the sorted list): the ground truth
chunk_math.py  per-Gaussian compositing math shared by both backends
layout.py      chunk-aligned per-intersection records built in XLA
gpu.py         Triton kernels (also run in interpret mode on CPU)
tpu.py         Mosaic kernels: chunks DMA'd to SMEM, tile offsets by scalar prefetch
vjp.py         custom_vjp glue: composite_pallas()
tests/         kernels vs reference (interpret mode), determinism, device lowering
Nothing here imports from the rest of flashtalker_jax.
"""
