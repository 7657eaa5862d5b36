"""torch.compile of a method's networks, for both trainers (`train.compile`)."""

from __future__ import annotations

from crossnet_dist.methods import TranslationMethod


def compile_networks(method: TranslationMethod) -> list[str]:
    """Compiles every generator and discriminator network in place (`nn.Module.compile`: the
    module and its parameter names stay as they are, so checkpoints and the serving export do not
    change). The losses, image pools and optimiser stay eager. Returns the compiled names."""
    names = []
    for group_name, group in (("generators", method.generators), ("discriminators", method.discriminators)):
        for name, module in group.items():
            module.compile()
            names.append(f"{group_name}.{name}")
    return names
