"""Covariates: Multi-PIE reader, face alignment, GAN inversion and SVM latent directions."""
