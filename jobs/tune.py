"""Entrypoint for `ray job submit`: a Ray Tune campaign over the loss weights.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env-json '{"excludes": [".venv/", "runs/", ".git/"], "env_vars": {"DS_ACCELERATOR": "cpu"}}' \
        -- python jobs/tune.py jobs/configs/tune.yaml data.root=s3://bucket/horse2zebra tune.storage_path=s3://bucket/tune

The job's driver is the campaign driver: it connects to the cluster through RAY_ADDRESS (set by
`ray job submit`), runs the trials there and writes the table, the plot and best/ to the campaign
folder. `--resume NAME` continues a stopped campaign (e.g. after the job was stopped).
"""

import sys

from crossnet_dist.environment import require_stack

if __name__ == "__main__":
    require_stack("tune")  # the cluster's Python may lack the stack: say so in one line
    from crossnet_dist.cli import main

    sys.exit(main(["tune", *sys.argv[1:]]))
