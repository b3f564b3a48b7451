"""Latent-space sampling: identities (random, reject, Langevin) and variations (Dispersion, DisCo)."""
