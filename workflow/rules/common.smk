# Shared helpers: config validation (defaults filled by the schema), output paths.
import sys

from brownface import config as brownface_config
from brownface.errors import UserError

try:
    brownface_config.validate(config, source="config")
except UserError as exc:
    sys.stderr.write(f"brownface: error: {exc}\n")
    sys.exit(1)

RESULTS = config["results"]


def results(*parts):
    """A path under the results directory."""
    return "/".join([RESULTS, *parts])


def logs(*parts):
    """A log path, mirroring the output it belongs to."""
    return results("logs", *parts)


def benchmarks(*parts):
    """A Snakemake benchmark table path (the repository's benchmarks/ is for measurements)."""
    return results("benchmarks", *parts)
