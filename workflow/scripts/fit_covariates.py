"""Adapter: one linear SVM per covariate into covariates.h5."""

from brownface.covariates.reader import SubsetRules
from brownface.covariates.stages import fit_covariates
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p = snakemake.params
    with snakemake_job(snakemake):
        fit_covariates(
            SubsetRules.from_config(p.subsets),
            projections=snakemake.input.projections,
            out=snakemake.output.covariates,
            folds=p.folds,
            seed=p.seed,
        )
