"""The packaged YAML configs: `crossnet train NAME` (or load_config("NAME")) finds NAME.yaml here
when no file of that name exists. jobs/configs/ is a link to this folder."""
