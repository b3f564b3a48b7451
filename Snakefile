# brownface: synthetic face datasets from Brownian identity diffusion.
# Stages live in workflow/rules/*.smk; all logic lives in the brownface package.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# Jobs use this checkout's library, also inside conda environments (which do not install it).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from brownface.runlog import share_library_path

share_library_path(os.path.join(workflow.basedir, "src"))


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/world.smk"
include: "workflow/rules/covariates.smk"
include: "workflow/rules/identities.smk"
include: "workflow/rules/variations.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.world.input,
        rules.reference_fr.input,
        rules.evaluation.input,
        rules.report.input,
