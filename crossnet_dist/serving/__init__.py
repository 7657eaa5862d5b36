"""The online endpoint: Ray Serve application, request checks, metrics, client, `crossnet serve`.

Modules (import what you need; importing this package does not import ray):
- app: FastAPI ingress + model deployment, `build_app` for Serve config files;
- model: the batched model deployment;
- requests: request checks and the error table (status codes and JSON reasons);
- (checkpoint sources, local or s3://, live in checkpoints/source.py);
- metrics: Prometheus metrics served at /metrics;
- server: start/stop Ray + Serve on 127.0.0.1;
- client: `translate_remote` and `translate_files_remote`;
- cli: `crossnet serve` and `crossnet translate --endpoint`.
"""

import os as _os

# A local Ray listens on 0.0.0.0 unless this is set before `import ray` (NOTES-stack.md); a cluster
# address or an explicit value in the environment wins.
_os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
