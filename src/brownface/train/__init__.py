"""FR training: margin heads, augmentations, data, loop, resume."""
