# brownface: synthetic face datasets from Brownian identity diffusion.
# Stages live in workflow/rules/*.smk; all logic lives in the brownface package.
import os
import sys

from snakemake.logging import logger
from snakemake.utils import min_version

min_version("9.0")

# Jobs use this checkout's library, also inside conda environments (which do not install it).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from brownface.config import read_yaml
from brownface.runlog import or_exit, share_library_path
from brownface.store import clear_accepted

share_library_path(os.path.join(workflow.basedir, "src"))

# Read first by brownface, so that a syntax error is one line naming the file, line and column.
if os.path.exists("config/config.yaml"):
    or_exit(read_yaml, "config/config.yaml")


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
include: "workflow/rules/leakage.smk"


rule all:
    default_target: True
    input:
        rules.world.input if USES_WORLD_GENERATOR else [],
        rules.reference_fr.input if USES_WORLD_REFERENCE else [],
        rules.evaluation.input if USES_WORLD_REFERENCE else [],
        rules.datasets.input,
        rules.report.input,
        rules.leakage.input,
        CAPACITY_OUTPUTS,


onsuccess:
    # Every job's outputs are accepted now: drop the checkpoints they were resumed from.
    for path in clear_accepted(RESULTS):
        logger.info(f"removed checkpoint {path} (its output is complete)")
