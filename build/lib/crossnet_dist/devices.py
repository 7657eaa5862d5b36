"""Device names from config ("auto", "cpu", "cuda", "cuda:N") to torch devices."""

import torch


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """"auto" picks CUDA when present; asking for CUDA without one is an error naming `key`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config key '{key}': {name!r} asked for but no CUDA device is available")
    return device
