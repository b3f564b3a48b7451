# brownface: synthetic face datasets from Brownian identity diffusion.
# Stages live in workflow/rules/*.smk; all logic lives in the brownface package.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/world.smk"


rule all:
    default_target: True
    input:
        rules.world.input,
