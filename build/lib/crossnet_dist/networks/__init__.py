"""Pure PyTorch networks; nothing here knows about Ray or DeepSpeed."""

from crossnet_dist.networks.discriminator import PatchGAN
from crossnet_dist.networks.generator import Decoder, Encoder, latent_channels
from crossnet_dist.networks.shapes import ImageSizeError, check_image_size, patchgan_output_size
from crossnet_dist.networks.translator import LatentTranslator

__all__ = [
    "Decoder", "Encoder", "ImageSizeError", "LatentTranslator", "PatchGAN",
    "check_image_size", "latent_channels", "patchgan_output_size",
]
