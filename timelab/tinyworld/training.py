"""Train TinyWorld from a seed the way Stable Diffusion was trained: ``timelab tinyworld train --seed 0``.

Three stages, each on (scene, caption) pairs drawn from the world (``captions.sample_example``):

1. a tiny CLIP: text tower (``CLIPTextModel``: causal, 77 tokens, end-token padding) and image tower,
   trained together with CLIP's symmetric contrastive loss over a batch of N pairs,
       L = (CE(s, I) + CE(s^T, I)) / 2,   s_ij = exp(t) cos(E_img(x_i), E_txt(y_j)),
   then frozen (empty captions are left out: there is nothing to match). ``clip_twins`` > 0 puts hard
   negatives in the batch: a share of two-object pairs come with their ``binding_twin`` (the same scene
   with one attribute exchanged between the objects, the same bag of words in its caption), which a
   text tower can only tell apart by binding attributes to objects;
2. the autoencoder (``AutoencoderKL``): reconstruction MSE plus a small KL term; its latent scale is then
   set to 1 / std of the latents, as SD's is;
3. the UNet on the frozen text tower's last hidden states (all 77 positions), with SD's noise-prediction
   loss ``E || eps - eps_theta(z_t, t, c) ||^2``; 10% of captions are empty (caption dropout for
   classifier-free guidance). The saved UNet is an exponential moving average of its weights
   (theta_ema <- d theta_ema + (1 - d) theta, d = min(ema_decay, (1 + step) / (10 + step))).

No loss looks at the text states for TIME's sake. Each stage saves a checkpoint every
``checkpoint_every`` steps into ``<out>.training/``; a run started again with the same configuration
resumes from the last one with nothing lost. ``--preset small`` trains a model in minutes for trying the
plumbing (its images are not yet recognisable); a text-tower choice is tried at the full CLIP stage alone
(``--vae-steps 1 --unet-steps 1``) and judged by ``benchmarks/tinyworld_levers.py --clip-only``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPTextModel

from ..clip_pixels import normalise
from ..devices import pick_device
from ..files import atomic_path
from ..schedulers import training_scheduler
from . import CLIP_FOLDER, MODEL_DIR, components
from .captions import binding_twin, sample_example
from .render import render
from .tokenizer import build_tokenizer, write_tokenizer_files



@dataclass(frozen=True)
class Stage:
    steps: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    sizes: components.Sizes = field(default_factory=components.Sizes)
    clip: Stage = Stage(steps=1500, batch_size=128, learning_rate=1e-3)
    vae: Stage = Stage(steps=2500, batch_size=32, learning_rate=1e-3)
    unet: Stage = Stage(steps=9000, batch_size=64, learning_rate=1e-3)
    ema_decay: float = 0.999
    clip_twins: float = 0.0  # share of two-object CLIP pairs joined by their binding twin (hard negatives)
    checkpoint_every: int = 250
    device: str = "auto"


PRESETS = {
    "full": TrainConfig(),
    "small": TrainConfig(clip=Stage(300, 128, 1e-3), vae=Stage(400, 32, 1e-3), unet=Stage(500, 64, 1e-3),
                         checkpoint_every=100),
}


TEXT_SIZES = ("text_width", "text_layers")  # the text tower's sizes the command line can change


def _lr_factor(step: int, total: int, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 10% of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def draw_batch(rng: np.random.Generator, n: int, captioned: bool = False,
               twins: float = 0.0) -> tuple[torch.Tensor, list[str]]:
    """``n`` pairs from the world: pixels (n, 3, H, W) in [-1, 1] and captions (``captioned``: no empty ones).
    ``twins``: the share of two-object pairs followed in the batch by their ``binding_twin``."""
    pairs = []
    while len(pairs) < n:
        scene, text = sample_example(rng)
        if text or not captioned:
            pairs.append((render(scene), text))
        twin = binding_twin(scene, text, rng) if twins and len(pairs) < n and rng.random() < twins else None
        if twin is not None:
            pairs.append((render(twin[0]), twin[1]))
    pixels = torch.from_numpy(np.stack([p for p, _ in pairs])).permute(0, 3, 1, 2) * 2 - 1
    return pixels, [t for _, t in pairs]


def clip_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] as CLIP's image tower takes them: in [0, 1], normalised by CLIP's statistics."""
    return normalise((pixels + 1) / 2)


class Checkpoints:
    """One resumable file per stage: weights, optimiser, EMA, step and both random generators' states.

    A checkpoint resumes under the configuration that wrote it, whatever the device: the device is where
    a run trains, not what it trains, so a run stopped on a GPU goes on on a CPU and back."""

    def __init__(self, folder: Path, config: TrainConfig):
        self.folder = folder
        self.config = config

    def path(self, stage: str) -> Path:
        return self.folder / f"{stage}.pt"

    def load(self, stage: str) -> dict | None:
        path = self.path(stage)
        if not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        if _what_is_trained(state["config"]) != _what_is_trained(asdict(self.config)):
            raise ValueError(f"{path} was written by another training configuration; remove "
                             f"{self.folder} to start afresh, or run with the configuration it holds")
        return state

    def save(self, stage: str, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path(stage)) as tmp:
            torch.save({**state, "config": asdict(self.config)}, tmp)


def _what_is_trained(config: dict) -> dict:
    """A configuration without its device."""
    return {key: value for key, value in config.items() if key != "device"}


def _run_stage(name: str, stage: Stage, modules: dict[str, torch.nn.Module], loss_fn, rng: np.random.Generator,
               checkpoints: Checkpoints, config: TrainConfig, ema: torch.nn.Module | None = None) -> tuple[list[float], float]:
    """Optimise ``modules`` with AdamW on ``loss_fn(rng)`` for ``stage.steps`` steps, resuming if it can.
    Returns the loss history and the seconds spent on the stage (over every run that worked on it)."""
    parameters = [p for m in modules.values() for p in m.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=stage.learning_rate, weight_decay=1e-4)
    averages = [p.detach().clone() for p in ema.parameters()] if ema is not None else []
    start, history, seconds = 0, [], 0.0
    state = checkpoints.load(name)
    if state is not None:
        for key, module in modules.items():
            module.load_state_dict(state["modules"][key])
        optimiser.load_state_dict(state["optimiser"])
        for average, saved in zip(averages, state.get("ema", [])):
            average.copy_(saved)
        start, history, seconds = state["step"], state["history"], state.get("seconds", 0.0)
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
    for module in modules.values():
        module.train()
    progress = tqdm(range(start, stage.steps), desc=name, initial=start, total=stage.steps, mininterval=2)
    resumed_at = time.time() - seconds
    for step in progress:
        for group in optimiser.param_groups:
            group["lr"] = stage.learning_rate * _lr_factor(step, stage.steps)
        loss = loss_fn(rng)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        if ema is not None:
            with torch.no_grad():
                decay = min(config.ema_decay, (1 + step) / (10 + step))
                for average, p in zip(averages, ema.parameters()):
                    average.lerp_(p, 1 - decay)
        history.append(loss.item())
        if step % 50 == 0 or step == stage.steps - 1:
            progress.set_postfix(loss=f"{np.mean(history[-50:]):.4f}")
        if (step + 1) % config.checkpoint_every == 0 or step == stage.steps - 1:
            checkpoints.save(name, {
                "modules": {k: m.state_dict() for k, m in modules.items()}, "optimiser": optimiser.state_dict(),
                "ema": averages, "step": step + 1, "history": history,
                "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "seconds": time.time() - resumed_at,
            })
    progress.close()
    seconds = time.time() - resumed_at
    if ema is not None:
        with torch.no_grad():
            for average, p in zip(averages, ema.parameters()):
                p.copy_(average)
    for module in modules.values():
        module.eval().requires_grad_(False)
    return history, seconds


def train(config: TrainConfig, out: str | os.PathLike, overwrite: bool = False) -> dict:
    """Train every component from ``config.seed`` and save a diffusers pipeline folder at ``out``."""
    out = Path(out)
    if (out / "model_index.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a model; pass overwrite=True (--overwrite) to replace it, "
                              "or choose another --out")
    device = pick_device(config.device)
    checkpoints = Checkpoints(out.parent / f"{out.name}.training", config)
    torch.manual_seed(config.seed)
    with tempfile.TemporaryDirectory(prefix="tinyworld-tokenizer-") as folder:
        tokenizer = build_tokenizer(folder)
    scheduler = training_scheduler()

    def tokens(texts: list[str]) -> torch.Tensor:
        return tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(device)

    # 1. tiny CLIP, contrastive
    clip = components.clip(tokenizer, config.sizes).to(device)
    clip_rng = np.random.default_rng([config.seed, 1])

    def clip_loss(rng):
        pixels, texts = draw_batch(rng, config.clip.batch_size, captioned=True, twins=config.clip_twins)
        return clip(input_ids=tokens(texts), pixel_values=clip_pixels(pixels).to(device), return_loss=True).loss

    clip_history, clip_seconds = _run_stage("clip", config.clip, {"clip": clip}, clip_loss, clip_rng, checkpoints, config)

    # 2. autoencoder
    vae = components.vae(config.sizes).to(device)
    vae_rng = np.random.default_rng([config.seed, 2])

    def vae_loss(rng):
        pixels = draw_batch(rng, config.vae.batch_size)[0].to(device)
        posterior = vae.encode(pixels).latent_dist
        return F.mse_loss(vae.decode(posterior.sample()).sample, pixels) + 1e-6 * posterior.kl().mean()

    _, vae_seconds = _run_stage("vae", config.vae, {"vae": vae}, vae_loss, vae_rng, checkpoints, config)
    check_pixels = draw_batch(np.random.default_rng([config.seed, 9]), 256)[0].to(device)
    with torch.no_grad():
        means = vae.encode(check_pixels).latent_dist.mean
        vae.register_to_config(scaling_factor=1.0 / means.std().item())
        reconstruction_error = F.mse_loss(vae.decode(means).sample, check_pixels).item() / 4  # in [0, 1] units

    # 3. UNet on the frozen text tower
    text_encoder = CLIPTextModel(clip.config.text_config).to(device)
    text_encoder.load_state_dict(clip.text_model.state_dict())
    text_encoder.eval().requires_grad_(False)
    unet = components.unet(config.sizes).to(device)
    unet_rng = np.random.default_rng([config.seed, 3])
    alphas = scheduler.alphas_cumprod.to(device)

    def unet_loss(rng):
        pixels, texts = draw_batch(rng, config.unet.batch_size)
        with torch.no_grad():
            z0 = vae.encode(pixels.to(device)).latent_dist.mean * vae.config.scaling_factor
            states = text_encoder(tokens(texts)).last_hidden_state
        noise = torch.randn_like(z0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(texts),), device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        return F.mse_loss(unet(a.sqrt() * z0 + (1 - a).sqrt() * noise, t, states).sample, noise)

    unet_history, unet_seconds = _run_stage("unet", config.unet, {"unet": unet}, unet_loss, unet_rng, checkpoints, config,
                              ema=unet)

    pipe = components.pipeline(tokenizer, text_encoder, unet, vae)
    pipe.to("cpu")
    clip.to("cpu")
    summary = {
        "config": asdict(config),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "train_seconds": round(clip_seconds + vae_seconds + unet_seconds, 1),
        "stage_seconds": {"clip": round(clip_seconds, 1), "vae": round(vae_seconds, 1), "unet": round(unet_seconds, 1)},
        "final_clip_loss": float(np.mean(clip_history[-100:])),
        "final_diffusion_loss": float(np.mean(unet_history[-100:])),
        "autoencoder_reconstruction_mse": reconstruction_error,
    }
    save_pipeline(pipe, clip, out, summary)
    shutil.rmtree(checkpoints.folder, ignore_errors=True)
    return summary


def save_pipeline(pipe, clip, out: str | os.PathLike, summary: dict) -> Path:
    """Write the pipeline folder (safetensors), the tiny CLIP and ``training.json``; ``out`` is replaced
    only when everything is written (the model card ``README.md`` is kept)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tinyworld-", dir=out.parent))
    try:
        staging.chmod(0o755)
        pipe.save_pretrained(staging, safe_serialization=True)
        clip.save_pretrained(staging / CLIP_FOLDER, safe_serialization=True)
        pipe.tokenizer.save_pretrained(staging / CLIP_FOLDER)  # so ClipJudge.from_pretrained(folder) loads both
        write_tokenizer_files(staging / "tokenizer")  # vocab.json + merges.txt for older transformers too
        (staging / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
        if (out / "README.md").exists():
            shutil.copy2(out / "README.md", staging / "README.md")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _run(args: argparse.Namespace) -> int:
    config = PRESETS[args.preset]
    config = replace(config, seed=args.seed, device=args.device)
    for stage in ("clip", "vae", "unet"):
        steps = getattr(args, f"{stage}_steps")
        if steps is not None:
            if steps < 1:
                raise ValueError(f"--{stage}-steps must be at least 1, got {steps}")
            config = replace(config, **{stage: replace(getattr(config, stage), steps=steps)})
    for size in TEXT_SIZES:
        value, flag = getattr(args, size), "--" + size.replace("_", "-")
        if value is not None:
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
            if size == "text_width" and value % components.TEXT_HEADS:
                raise ValueError(f"{flag} must be a multiple of {components.TEXT_HEADS} (the text tower's "
                                 f"attention heads), got {value}")
            config = replace(config, sizes=replace(config.sizes, **{size: value}))
    if args.clip_twins is not None:
        if not 0 <= args.clip_twins <= 1:
            raise ValueError(f"--clip-twins is a share between 0 and 1, got {args.clip_twins}")
        config = replace(config, clip_twins=args.clip_twins)
    summary = train(config, args.out, overwrite=args.overwrite)
    overrides = "".join(f" --{s}-steps {getattr(args, f'{s}_steps')}" for s in ("clip", "vae", "unet")
                        if getattr(args, f"{s}_steps") is not None)
    overrides += "".join(f" --{s.replace('_', '-')} {getattr(args, s)}" for s in TEXT_SIZES
                         if getattr(args, s) is not None)
    if args.clip_twins is not None:
        overrides += f" --clip-twins {args.clip_twins}"
    summary["command"] = (f"timelab tinyworld train --seed {args.seed} --preset {args.preset}{overrides} "
                          f"--device {args.device} --threads {torch.get_num_threads()} --out {args.out}")
    (Path(args.out) / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"trained in {summary['train_seconds'] / 60:.1f} minutes: {args.out}")
    return 0


def register(commands) -> argparse.ArgumentParser:
    """Add ``timelab tinyworld train`` to the ``timelab tinyworld`` commands."""
    parser = commands.add_parser("train", help="train TinyWorld from a seed and save the pipeline folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full",
                        help="full: the shipped model; small: a model in minutes, for trying design choices")
    for stage in ("clip", "vae", "unet"):
        parser.add_argument(f"--{stage}-steps", type=int, default=None, help=f"override the preset's {stage} steps")
    for size in TEXT_SIZES:
        parser.add_argument(f"--{size.replace('_', '-')}", type=int, default=None,
                            help=f"override the text tower's {size.split('_')[1]} (default {getattr(components.Sizes(), size)})")
    parser.add_argument("--clip-twins", type=float, default=None,
                        help="share of two-object CLIP pairs joined in the batch by their binding twin (default 0)")
    parser.add_argument("--out", type=Path, required=True,
                        help=f"output folder (the shipped model is {MODEL_DIR.relative_to(MODEL_DIR.parents[2])})")
    parser.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.set_defaults(run=_run)
    return parser
