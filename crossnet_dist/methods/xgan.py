"""XGAN (Royer et al. 2017): a dual adversarial autoencoder with a shared, semantically consistent embedding.

g_1->2 = d_2 o e_1 (domain a -> b), g_2->1 = d_1 o e_2. Generator step, eq. 1:
  L = L_rec (eq. 2) + w_dann L_dann (eq. 3) + w_sem L_sem (eq. 4) + w_gan L_gan (eq. 6) + w_teach L_teach
Terms of weight 0 are not computed.

BatchNorm statistics: each encoder and decoder has its own, in the shared layers too, and their running
averages are taken only on the passes that serving runs (e_1 on real a, d_2 on e_1(real a), and the
same for b), so an eval-mode translation normalises as the train-mode translation stream did; the
reconstruction and semantic-consistency passes normalise by their batch without moving them.

Where the domain classifier lives: c_dann is in `generators`. Eq. 3 is a min-max between c_dann and
the encoders, and the paper implements it with a gradient reversal layer "performed in the same step
as for the generator parameters" (sec. 3.1): one backward of L_dann gives c_dann the gradient that
minimises it and the encoders (through the reversal) the gradient that maximises it, so the
generator optimiser must own c_dann. A discriminator-side c_dann would see frozen parameters in
the generator step and need a second forward pass in the discriminator step.

GAN: the paper uses only D_1->2 (faces -> cartoons), so by default only `D_b` (judging g_1->2(x_a)
against real b) exists; model.xgan.gan_b2a=true adds D_a for g_2->1.
Teacher (optional, loss.xgan.teach > 0): EfficientNet-Lite0's pooled 1280-d features stand in for
FaceNet, applied to domain a only; model.xgan.embedding_dim must then be 1280.
"""

from __future__ import annotations

from torch import Tensor

from crossnet_dist.losses import (
    domain_adversarial_loss,
    gan_discriminator_loss,
    gan_generator_loss,
    semantic_consistency_loss,
    teacher_loss,
    xgan_reconstruction_loss,
)
from crossnet_dist.methods.base import StepOutput, TranslationMethod, weighted_sum
from crossnet_dist.methods.options import METHOD_OPTIONS
from crossnet_dist.networks.xgan_nets import (
    DomainClassifier,
    XGANDecoder,
    XGANDecoderShared,
    XGANDiscriminator,
    XGANEncoder,
    XGANEncoderShared,
    frozen_running_stats,
)


class XGAN(TranslationMethod):
    name = "xgan"
    options = METHOD_OPTIONS["xgan"]  # its model.xgan / loss.xgan dataclasses and their checks
    translation_modules = ("e_1", "e_2", "d_1", "d_2")
    encoder_decoder = {"a2b": ("e_1", "d_2"), "b2a": ("e_2", "d_1")}  # g_12 = d_2 o e_1
    # sec. 3.1: Adam, lr 1e-4; betas not given, so Adam's own (0.9, 0.999); no history pool
    optim_defaults = {"lr": 1e-4, "beta1": 0.9, "beta2": 0.999, "pool_size": 0}

    def __init__(self, model_cfg, loss_cfg, inference: bool = False):
        super().__init__(model_cfg, loss_cfg, inference)
        enc_shared, dec_shared = XGANEncoderShared(model_cfg), XGANDecoderShared(model_cfg)
        g = self.generators
        g["e_1"], g["e_2"] = XGANEncoder(model_cfg, enc_shared), XGANEncoder(model_cfg, enc_shared)
        g["d_1"], g["d_2"] = XGANDecoder(model_cfg, dec_shared), XGANDecoder(model_cfg, dec_shared)
        self.teacher = None
        if not inference:
            g["c_dann"] = DomainClassifier(model_cfg)
            self.discriminators["D_b"] = XGANDiscriminator(model_cfg)  # D_1->2
            if model_cfg.xgan.gan_b2a:
                self.discriminators["D_a"] = XGANDiscriminator(model_cfg)  # D_2->1
            if loss_cfg.teach > 0:
                from crossnet_dist.networks.efficientnet_lite import load_efficientnet_lite0

                path = model_cfg.xgan.teacher_weights or None
                self.teacher = load_efficientnet_lite0(path)  # frozen, eval; not in either group

    def generator_step(self, x_a: Tensor, x_b: Tensor) -> StepOutput:
        g, w = self.generators, self.weights
        e_1, e_2, d_1, d_2 = g["e_1"], g["e_2"], g["d_1"], g["d_2"]
        emb_a, emb_b = e_1(x_a), e_2(x_b)
        terms: dict[str, Tensor] = {}
        if w.rec > 0:
            with frozen_running_stats(d_1, d_2):  # the decoders' statistics come from the translation streams
                terms["rec"] = xgan_reconstruction_loss(d_1(emb_a), x_a, d_2(emb_b), x_b)
        if w.dann > 0:
            c = g["c_dann"]  # behind the gradient reversal layer
            terms["dann"] = domain_adversarial_loss(c(emb_a), c(emb_b))
        fake_b, fake_a = d_2(emb_a), d_1(emb_b)  # g_1->2(x_a), g_2->1(x_b)
        if w.sem > 0:
            with frozen_running_stats(e_1, e_2):  # the encoders' statistics come from real images only
                terms["sem"] = semantic_consistency_loss(emb_a, e_2(fake_b), emb_b, e_1(fake_a))
        if w.gan > 0:
            gan = gan_generator_loss(self.discriminators["D_b"](fake_b))
            if "D_a" in self.discriminators:
                gan = gan + gan_generator_loss(self.discriminators["D_a"](fake_a))
            terms["gan"] = gan
        if w.teach > 0:
            self.teacher.eval()
            terms["teach"] = teacher_loss(self.teacher.features(x_a), emb_a)
        fakes = {"b": fake_b, **({"a": fake_a} if "D_a" in self.discriminators else {})}
        return StepOutput(loss=weighted_sum(terms, w), terms=terms, fakes=fakes)

    def discriminator_step(self, x_a: Tensor, x_b: Tensor, fakes: dict[str, Tensor]) -> StepOutput:
        D_b = self.discriminators["D_b"]
        terms = {"D_b": gan_discriminator_loss(D_b(x_b), D_b(fakes["b"].detach()))}
        if "D_a" in self.discriminators:
            D_a = self.discriminators["D_a"]
            terms["D_a"] = gan_discriminator_loss(D_a(x_a), D_a(fakes["a"].detach()))
        return StepOutput(loss=sum(terms.values()), terms=terms)

    def sample_columns(self, x_a: Tensor, x_b: Tensor) -> dict[str, list[Tensor]]:
        g = self.generators
        emb_a, emb_b = g["e_1"](x_a), g["e_2"](x_b)
        return {  # input | translation | autoencoder reconstruction
            "a": [x_a, g["d_2"](emb_a), g["d_1"](emb_a)],
            "b": [x_b, g["d_1"](emb_b), g["d_2"](emb_b)],
        }
