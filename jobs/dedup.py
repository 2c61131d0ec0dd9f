"""``python -m jobs.dedup``: the same command line as the ``dedup`` console script.

Used with ``ray job submit --working-dir . -- python -m jobs.dedup run --input s3://... --output ...``;
inside a Ray job, RAY_ADDRESS is set and the job joins that cluster.
"""
import sys

from dedup.cli import main

if __name__ == "__main__":
    sys.exit(main())
