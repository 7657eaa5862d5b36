"""XGAN (papers/xgan.txt): its Table 1 network widths, teacher, and the weights of eq. 1."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class XGANOptions:
    """XGAN (papers/xgan.txt, Table 1, 64x64): conv blocks down to 4x4, FC embedding, mirrored decoder."""

    enc_channels: int = 32  # conv1 width, doubled per block (32, 64, 128, 256 at 64x64)
    embedding_dim: int = 1024  # FC1/FC2 width; 1280 when the EfficientNet-Lite0 teacher is used
    disc_channels: int = 16  # discriminator conv1 width (16, 32, 32, 32)
    dann_hidden: int = 256  # hidden units of the domain classifier c_dann (not given in the paper)
    gan_b2a: bool = False  # the paper trains only D_1->2 (a2b); true adds the symmetric discriminator
    teacher_weights: str = ""  # EfficientNet-Lite0 state dict for L_teach; "" = the packaged file


@dataclass
class XGANLossWeights:
    """XGAN eq. 1; the paper gives no omega values, so every term defaults to 1 and the teacher is off."""

    rec: float = 1.0  # L_rec, eq. 2
    dann: float = 1.0  # omega_dann, eq. 3
    sem: float = 1.0  # omega_sem, eq. 4
    gan: float = 1.0  # omega_gan, eq. 6
    teach: float = 0.0  # omega_teach (optional teacher loss)


def validate(cfg, fail) -> None:
    m = cfg.model
    for key in ("enc_channels", "embedding_dim", "disc_channels", "dann_hidden"):
        if m.xgan[key] < 1:
            fail(f"model.xgan.{key}", "must be >= 1")
    if cfg.method != "xgan":
        return
    size = m.image_size
    if size < 32 or size & (size - 1):
        fail("model.image_size", "xgan needs a power of two >= 32 (conv blocks halve it down to 4x4)")
    if cfg.loss.xgan.teach > 0 and m.xgan.embedding_dim != 1280:
        fail("model.xgan.embedding_dim", "must be 1280 (the EfficientNet-Lite0 teacher's width) when loss.xgan.teach > 0")
