"""Entrypoint for `ray job submit`: distributed training from a YAML config with dotted overrides.

    ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env-json '{"excludes": [".venv/", "runs/", ".git/"], "env_vars": {"DS_ACCELERATOR": "cpu"}}' \
        -- python jobs/train.py jobs/configs/tiny_dist.yaml data.root=s3://bucket/horse2zebra dist.num_workers=2

runtime_env: `working_dir` ships this repository to every node (it is put first on sys.path, so
`crossnet_dist` is the submitted code; .gitignore'd paths are not uploaded, so list the big local
folders in `excludes` anyway); the cluster's Python must have the pinned stack
(requirements.txt): the job checks that first and says how to fix it: start the cluster from the
project's environment; or, on a cluster whose Python lacks the stack, name one that has it in the
entrypoint and as the runtime_env's py_executable (`--runtime-env-json '{"py_executable":
"/opt/venv/bin/python", ...}' -- /opt/venv/bin/python jobs/train.py ...`, what
tests/test_dist_jobs.py runs on a bare `ray start --head`); or `"pip": "requirements.txt"`, which
installs the stack on every node for the job; or the project's image. Put storage credentials in
`env_vars` (AWS_ACCESS_KEY_ID, ..., AWS_ENDPOINT_URL for a non-AWS S3) or, better, in the nodes'
environment/instance roles.
The job's driver connects to the cluster through RAY_ADDRESS, which `ray job submit` sets;
`--resume RUN` continues a stopped run.
"""

import sys

from crossnet_dist.environment import require_stack

if __name__ == "__main__":
    require_stack("train")  # the cluster's Python may lack the stack: say so in one line
    from crossnet_dist.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
