"""Adapter: the report's figures (IJB ROC, angle histograms, sampler statistics, training)."""

from brownface.report.stages import figures
from brownface.runlog import snakemake_job

if __name__ == "__main__":
    p, out = snakemake.params, snakemake.output
    with snakemake_job(snakemake):
        figures(
            roc=p.roc,
            roc_out=p.roc_out,
            stores=p.stores,
            identity_stats=p.identity_stats,
            variation_stats=p.variation_stats,
            train_logs=p.train_logs,
            ict_deg=p.ict_deg,
            angles_out=out.angles,
            sampling_out=out.sampling,
            training_out=out.training,
        )
