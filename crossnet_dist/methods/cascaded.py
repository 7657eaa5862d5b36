"""Cross-domain cascaded deep translation (papers/cascaded-deep-translation.txt).

Images go through a frozen VGG-19; conv_i_1 maps (i = 5 .. model.cascaded.finest_level) are
normalised per channel with per-domain statistics and clamped to [-1, 1] (`FeatureStats`).
Translators, per level and direction (G<i>_B: A -> B, G<i>_A: B -> A, the paper's G_i^B, G_i^A):
  level 5: `DeepestTranslator` (Table 3), unconditional;
  level i < 5: `ConditionalTranslator` (Tables 4-5), conditioned on the translated level i + 1 via AdaIN.
Inversion nets Inv<i>_A, Inv<i>_B turn a normalised level-i map of a domain back into an image.
Inference (`translate`): a_5 -> b~_5 = G5_B(a_5) -> b~_4 = G4_B(a_4, b~_5) -> ... -> Inv<finest>_B(b~_finest).

Training is one stage per run, chosen by model.cascaded.train_level:
  5 (first), then 4, 3, ... down to finest_level: the translator pair of that level, WGAN-GP (eq. 1,
     lambda_gp) with `critic_steps` critic updates before each translator update, each on a batch of
     its own (a step consumes critic_steps batches, as WGAN-GP's Algorithm 1), cycle (eq. 2) and identity
     (eq. 3) L1 losses with weight 100 (eq. 4); deeper translators are fixed (Fig. 4);
  0: the feature inversion nets of every level, image MSE + LSGAN against one PatchGAN per domain.
Each later stage starts from the previous stage's checkpoint (model.cascaded.init_from, train or
serving format), which carries VGG, feature statistics and every trained network; modules a stage
does not train are frozen (requires_grad False), so optimisers and ZeRO skip them. The first stage
needs VGG-19 weights (model.cascaded.vgg_weights, torchvision's vgg19 state-dict file).

Not from the paper (it gives no details): the WGAN critics' architecture (`FeatureCritic`), the
inversion loss weights, the statistics estimated from the first `stats_batches` batches, and one
PatchGAN per domain shared by the inversion nets of all levels.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from crossnet_dist.losses import (
    feature_cycle_loss,
    feature_identity_loss,
    gradient_penalty,
    inversion_reconstruction_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    wgan_critic_loss,
    wgan_generator_loss,
)
from crossnet_dist.methods.base import StepOutput, TranslationMethod, check_direction, weighted_sum
from crossnet_dist.methods.options import METHOD_OPTIONS
from crossnet_dist.networks.cascaded_nets import (
    ConditionalTranslator,
    DeepestTranslator,
    FeatureCritic,
    FeatureStats,
    InversionNet,
    InversionPatchGAN,
)
from crossnet_dist.networks.vgg import VGG19Features

log = logging.getLogger(__name__)


class CascadedError(ValueError):
    """A cascaded-method setting cannot be honoured; the message names the config key."""


class Cascaded(TranslationMethod):
    name = "cascaded"
    options = METHOD_OPTIONS["cascaded"]  # its model.cascaded / loss.cascaded dataclasses and their checks
    # appendix A.1.1: Adam 1e-4 (0.5, 0.999) at a fixed rate; no history pool (a WGAN-GP critic is
    # trained on the current translator's samples)
    optim_defaults = {"lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "pool_size": 0}

    def __init__(self, model_cfg, loss_cfg, inference: bool = False):
        super().__init__(model_cfg, loss_cfg, inference)
        opts = model_cfg.cascaded
        self.levels = tuple(range(5, opts.finest_level - 1, -1))  # deep to shallow
        self.finest = opts.finest_level
        self.train_level = int(opts.train_level)
        self.critic_steps = int(opts.critic_steps) if self.train_level > 0 else 1
        # WGAN-GP (Gulrajani et al., Algorithm 1): n_critic critic updates, each on fresh real samples and
        # fresh fakes, before each translator update; the inversion stage (LSGAN) updates G first.
        self.discriminator_first = self.train_level > 0
        cap, size = opts.max_channels, model_cfg.image_size
        g = self.generators
        g["vgg"] = VGG19Features()
        g["stats"] = FeatureStats(self.levels)
        for i in self.levels:
            for d in "BA":
                g[f"G{i}_{d}"] = DeepestTranslator(cap) if i == 5 else ConditionalTranslator(i, cap, opts.adain_hidden, size)
        inv_levels = (self.finest,) if inference else self.levels
        for i in inv_levels:
            for d in "AB":
                g[f"Inv{i}_{d}"] = InversionNet(i, cap, model_cfg.in_channels)
        self.translation_modules = (
            "vgg", "stats", *[f"G{i}_{d}" for i in self.levels for d in "BA"], f"Inv{self.finest}_A", f"Inv{self.finest}_B",
        )
        self._update_stats = False
        self._cache: tuple | None = None
        if inference:
            return  # every weight comes from the checkpoint

        if self.train_level == 0:
            for d in "AB":
                self.discriminators[f"P_{d}"] = InversionPatchGAN(model_cfg.disc_channels, model_cfg.in_channels)
        else:
            for d in "AB":
                self.discriminators[f"D{self.train_level}_{d}"] = FeatureCritic(self.train_level, cap)
        if opts.init_from:
            self._load_previous_stage(opts.init_from)
        else:
            g["vgg"].load_torchvision_weights(opts.vgg_weights)
            self._update_stats = True
        self._stats_batches = int(opts.stats_batches)
        self._freeze_all_but_stage()

    # ---- set-up --------------------------------------------------------------------------------
    def stage_modules(self) -> list[str]:
        """The generator-side modules this stage trains."""
        if self.train_level == 0:
            return [f"Inv{i}_{d}" for i in self.levels for d in "AB"]
        return [f"G{self.train_level}_B", f"G{self.train_level}_A"]

    def _freeze_all_but_stage(self) -> None:
        trained = set(self.stage_modules())
        for name, module in self.generators.items():
            module.requires_grad_(name in trained)

    def _load_previous_stage(self, path: str) -> None:
        from crossnet_dist.checkpoints.files import SERVING_FORMAT, TRAIN_FORMAT, CheckpointError, load_checked

        key = "model.cascaded.init_from"
        try:
            payload = load_checked(path, (SERVING_FORMAT, TRAIN_FORMAT))
        except CheckpointError as err:
            raise CascadedError(f"config key '{key}': {err}") from None
        if payload.get("method") != self.name:
            raise CascadedError(f"config key '{key}': {path} is a {payload.get('method')!r} checkpoint, not cascaded")
        if payload["format"] == SERVING_FORMAT:
            state = {f"{m}.{k}": v for m, sd in payload["translation"].items() for k, v in sd.items()}
        else:
            state = payload["generators"]
        try:
            missing, unexpected = self.generators.load_state_dict(state, strict=False)
        except RuntimeError as err:
            raise CascadedError(
                f"config key '{key}': {path} does not fit this config (same image_size, max_channels, "
                f"adain_hidden and finest_level needed): {str(err).splitlines()[1] if chr(10) in str(err) else err}"
            ) from None
        if unexpected:
            raise CascadedError(f"config key '{key}': {path} holds modules this config lacks: {unexpected[:4]}")
        if any(k.startswith(("vgg.", "stats.")) for k in missing):
            raise CascadedError(f"config key '{key}': {path} lacks the VGG weights or feature statistics")
        done = self.generators["stats"].trained_steps.tolist()
        untrained = [i for i in self.levels if i > self.train_level > 0 and done[i] == 0]
        if untrained:
            log.warning("cascaded: training level %d but deeper level(s) %s have no training steps in %s",
                        self.train_level, untrained, path)
        log.info("cascaded: stage %d starts from %s (steps per level so far: %s)", self.train_level, path, done)

    # ---- features ------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, x: Tensor, domain: str) -> dict[int, Tensor]:
        """Normalised conv_i_1 maps of x for every cascade level, in `domain`'s statistics."""
        raw = self.generators["vgg"](x, self.levels)
        return {i: self.generators["stats"].normalize(raw[i], domain, i) for i in self.levels}

    @torch.no_grad()
    def _real_features(self, x_a: Tensor, x_b: Tensor) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
        if self._cache is not None and self._cache[0] is x_a and self._cache[1] is x_b:
            return self._cache[2], self._cache[3]
        stats = self.generators["stats"]
        if self.training and self._update_stats and int(stats.batches) < self._stats_batches:
            vgg = self.generators["vgg"]
            stats.update(vgg(x_a, self.levels), vgg(x_b, self.levels))
        f_a, f_b = self.features(x_a, "A"), self.features(x_b, "B")
        self._cache = (x_a, x_b, f_a, f_b)
        return f_a, f_b

    def cascade(self, feats: dict[int, Tensor], target: str, to_level: int) -> Tensor:
        """Translates source-domain maps into `target` from level 5 down to `to_level`."""
        g = self.generators
        t = g[f"G5_{target}"](feats[5])
        for i in range(4, to_level - 1, -1):
            t = g[f"G{i}_{target}"](feats[i], t)
        return t

    # ---- steps ---------------------------------------------------------------------------------
    def generator_step(self, x_a: Tensor, x_b: Tensor) -> StepOutput:
        f_a, f_b = self._real_features(x_a, x_b)
        self.generators["stats"].trained_steps[self.train_level] += 1
        if self.train_level == 0:
            return self._inversion_step(x_a, x_b, f_a, f_b)
        return self._translation_step(f_a, f_b)

    def _translate_level(self, f_a: dict[int, Tensor], f_b: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
        """(b~_i, a~_i): the trained level's translations of the real maps, conditioned on the fixed deeper cascade."""
        i, g = self.train_level, self.generators
        if i == 5:
            return g["G5_B"](f_a[5]), g["G5_A"](f_b[5])
        with torch.no_grad():  # the fixed deeper cascade: b~_{i+1}, a~_{i+1}
            tb, ta = self.cascade(f_a, "B", i + 1), self.cascade(f_b, "A", i + 1)
        return g[f"G{i}_B"](f_a[i], tb), g[f"G{i}_A"](f_b[i], ta)

    def _translation_step(self, f_a: dict[int, Tensor], f_b: dict[int, Tensor]) -> StepOutput:
        i, g, w = self.train_level, self.generators, self.weights
        G_B, G_A = g[f"G{i}_B"], g[f"G{i}_A"]
        a, b = f_a[i], f_b[i]
        terms: dict[str, Tensor] = {}
        fake_b, fake_a = self._translate_level(f_a, f_b)
        if i == 5:
            if w.cycle > 0:
                terms["cycle"] = feature_cycle_loss(G_A(fake_b), a, G_B(fake_a), b)
            if w.identity > 0:
                terms["identity"] = feature_identity_loss(G_A(a), a, G_B(b), b)
        else:
            if w.cycle > 0:
                terms["cycle"] = feature_cycle_loss(G_A(fake_b, f_a[i + 1]), a, G_B(fake_a, f_b[i + 1]), b)
            if w.identity > 0:
                terms["identity"] = feature_identity_loss(G_A(a, f_a[i + 1]), a, G_B(b, f_b[i + 1]), b)
        if w.adv > 0:
            D_A, D_B = self.discriminators[f"D{i}_A"], self.discriminators[f"D{i}_B"]
            terms["adv"] = wgan_generator_loss(D_B(fake_b)) + wgan_generator_loss(D_A(fake_a))
        weights = {"adv": w.adv, "cycle": w.cycle, "identity": w.identity}
        return StepOutput(loss=weighted_sum(terms, weights), terms=terms, fakes={"a": fake_a, "b": fake_b})

    def _inversion_step(self, x_a, x_b, f_a, f_b) -> StepOutput:
        g, w = self.generators, self.weights
        rec_a = [g[f"Inv{i}_A"](f_a[i]) for i in self.levels]
        rec_b = [g[f"Inv{i}_B"](f_b[i]) for i in self.levels]
        terms: dict[str, Tensor] = {}
        if w.inv_pixel > 0:
            terms["inv_pixel"] = sum(inversion_reconstruction_loss(r, x_a) for r in rec_a) + sum(
                inversion_reconstruction_loss(r, x_b) for r in rec_b
            )
        if w.inv_gan > 0:
            P_A, P_B = self.discriminators["P_A"], self.discriminators["P_B"]
            terms["inv_gan"] = sum(lsgan_generator_loss(P_A(r)) for r in rec_a) + sum(
                lsgan_generator_loss(P_B(r)) for r in rec_b
            )
        weights = {"inv_pixel": w.inv_pixel, "inv_gan": w.inv_gan}
        fakes = {"a": torch.cat(rec_a), "b": torch.cat(rec_b)}
        return StepOutput(loss=weighted_sum(terms, weights), terms=terms, fakes=fakes)

    def discriminator_fakes(self, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
        """The trained level's translations of this batch's features (translation stages only)."""
        fake_b, fake_a = self._translate_level(*self._real_features(x_a, x_b))
        return {"a": fake_a, "b": fake_b}

    def discriminator_step(self, x_a: Tensor, x_b: Tensor, fakes: dict[str, Tensor]) -> StepOutput:
        if self.train_level == 0:
            P_A, P_B = self.discriminators["P_A"], self.discriminators["P_B"]
            d_a = lsgan_discriminator_loss(P_A(x_a), P_A(fakes["a"].detach()))
            d_b = lsgan_discriminator_loss(P_B(x_b), P_B(fakes["b"].detach()))
            return StepOutput(loss=d_a + d_b, terms={"P_A": d_a, "P_B": d_b})
        i = self.train_level
        f_a, f_b = self._real_features(x_a, x_b)
        D_A, D_B = self.discriminators[f"D{i}_A"], self.discriminators[f"D{i}_B"]
        fake_a, fake_b = fakes["a"].detach(), fakes["b"].detach()
        w_a = wgan_critic_loss(D_A(f_a[i]), D_A(fake_a))
        w_b = wgan_critic_loss(D_B(f_b[i]), D_B(fake_b))
        gp = gradient_penalty(D_A, f_a[i], fake_a) + gradient_penalty(D_B, f_b[i], fake_b)
        return StepOutput(loss=w_a + w_b + self.weights.gp * gp, terms={"D_A": w_a, "D_B": w_b, "gp": gp})

    # ---- inference -----------------------------------------------------------------------------
    def translate_to_level(self, x: Tensor, direction: str, level: int) -> Tensor:
        check_direction(direction)
        src, tgt = ("A", "B") if direction == "a2b" else ("B", "A")
        return self.generators[f"Inv{level}_{tgt}"](self.cascade(self.features(x, src), tgt, level))

    def translate(self, x: Tensor, direction: str) -> Tensor:
        """The full cascade, level 5 down to finest_level, then that level's inversion net."""
        return self.translate_to_level(x, direction, self.finest)

    def sample_columns(self, x_a: Tensor, x_b: Tensor) -> dict[str, list[Tensor]]:
        level = self.train_level or self.finest  # the level this stage trains (or the finest one)
        g = self.generators
        inv_a, inv_b = g[f"Inv{level}_A"], g[f"Inv{level}_B"]
        return {  # input | translation through `level` | inversion of the input's own features
            "a": [x_a, self.translate_to_level(x_a, "a2b", level), inv_a(self.features(x_a, "A")[level])],
            "b": [x_b, self.translate_to_level(x_b, "b2a", level), inv_b(self.features(x_b, "B")[level])],
        }
