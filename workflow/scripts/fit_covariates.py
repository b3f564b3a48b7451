"""Adapter: one linear SVM per covariate into covariates.h5."""

from brownface.covariates.stages import run_fit
from brownface.runlog import run_stage

if __name__ == "__main__":
    p = snakemake.params
    run_stage(
        snakemake,
        run_fit,
        snakemake.input.projections,
        out=snakemake.output.covariates,
        subsets=p.subsets,
        folds=p.folds,
        seed=p.seed,
    )
