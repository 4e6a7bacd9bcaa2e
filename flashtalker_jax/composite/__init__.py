"""Compositing rendered heads into full source frames: the body inpainter (GGTalker), frame schedule, paste-back."""
