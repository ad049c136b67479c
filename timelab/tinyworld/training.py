"""Train TinyWorld from a seed: ``timelab tinyworld train --seed 0 --steps 3000 --out DIR``.

Two stages, both on data drawn fresh from the world (``captions.sample_example``):

1. the autoencoder: ``AutoencoderKL`` learns the world's 80 distinct images (reconstruction MSE plus a
   small KL term); its latent scale is then set to 1 / std of the latents, as SD's is;
2. text encoder and UNet together, with SD's noise-prediction loss on the latents plus the caption-code
   loss: the text states at the end token and every padding position are pulled towards the caption's
   additive code (``caption_code``), so that, as in CLIP, the end and padding states carry the caption:

       L = E || eps - eps_theta(z_t, t, c) ||^2  +  w * mean_{i >= end} || c_i - code(caption) ||^2 / d

The saved text encoder and UNet are exponential moving averages of the trained weights
(theta_ema <- d theta_ema + (1 - d) theta, with d = min(ema_decay, (1 + step) / (10 + step))).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..schedulers import training_scheduler
from . import components
from .caption_code import attribute_basis, caption_code
from .captions import sample_example
from .render import all_scenes, render
from .tokenizer import build_tokenizer, write_tokenizer_files


@dataclass
class TrainConfig:
    seed: int = 0
    steps: int = 2500
    batch_size: int = 64
    learning_rate: float = 1e-3
    vae_steps: int = 600
    code_weight: float = 1.0
    ema_decay: float = 0.999
    device: str = "auto"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def _lr_factor(step: int, total: int, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 10% of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_vae(vae, images: torch.Tensor, steps: int, device: torch.device) -> float:
    """Fit the autoencoder to ``images`` (N, 3, H, W) in [-1, 1]; set and return its latent scale."""
    vae.to(device).train()
    optimiser = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=0.0)
    images = images.to(device)
    for _ in tqdm(range(steps), desc="autoencoder", mininterval=2):
        posterior = vae.encode(images).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(reconstruction, images) + 1e-5 * posterior.kl().mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    vae.eval()
    with torch.no_grad():
        scale = 1.0 / vae.encode(images).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=scale)
    return scale


def train(config: TrainConfig, out: str | os.PathLike) -> dict:
    """Train all components from ``config.seed`` and save a diffusers pipeline folder at ``out``."""
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.time()

    tokenizer = build_tokenizer()
    text_encoder = components.text_encoder(tokenizer).to(device)
    unet = components.unet().to(device)
    vae = components.vae()
    scheduler = training_scheduler()

    scenes = all_scenes()
    scene_index = {s: i for i, s in enumerate(scenes)}
    pixels = torch.from_numpy(np.stack([render(s) for s in scenes])).permute(0, 3, 1, 2) * 2 - 1
    train_vae(vae, pixels, config.vae_steps, device)
    with torch.no_grad():
        latents = vae.encode(pixels.to(device)).latent_dist.mean * vae.config.scaling_factor
        reconstruction_error = F.mse_loss(vae.decode(latents / vae.config.scaling_factor).sample,
                                          pixels.to(device)).item()
    vae.requires_grad_(False)

    basis = attribute_basis(components.TEXT_WIDTH, config.seed)
    token_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def encode_caption(text: str) -> tuple[torch.Tensor, torch.Tensor]:
        if text not in token_cache:
            ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length,
                            truncation=True, return_tensors="pt").input_ids[0]
            token_cache[text] = (ids, caption_code(text, basis))
        return token_cache[text]

    parameters = list(unet.parameters()) + list(text_encoder.parameters())
    averages = [p.detach().clone() for p in parameters]
    optimiser = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=1e-4)
    alphas = scheduler.alphas_cumprod.to(device)
    unet.train()
    text_encoder.train()
    progress = tqdm(range(config.steps), desc="text encoder + unet", mininterval=2)
    history = []
    for step in progress:
        batch = [sample_example(rng) for _ in range(config.batch_size)]
        z0 = latents[[scene_index[s] for s, _ in batch]]
        ids, codes = (torch.stack(x).to(device) for x in zip(*(encode_caption(c) for _, c in batch)))
        noise = torch.randn_like(z0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(batch),), device=device)
        a = alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        states = text_encoder(ids).last_hidden_state
        diffusion_loss = F.mse_loss(unet(zt, t, states).sample, noise)
        after_end = torch.cumsum(ids == tokenizer.eos_token_id, dim=1) > 0
        code_error = (states - codes[:, None, :]).pow(2).mean(-1)
        code_loss = code_error[after_end].mean()
        loss = diffusion_loss + config.code_weight * code_loss
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(step, config.steps)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimiser.step()
        with torch.no_grad():
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            for average, p in zip(averages, parameters):
                average.lerp_(p, 1 - decay)
        history.append((diffusion_loss.item(), code_loss.item()))
        if step % 50 == 0 or step == config.steps - 1:
            recent = np.mean(history[-50:], axis=0)
            progress.set_postfix(diffusion=f"{recent[0]:.4f}", code=f"{recent[1]:.4f}")

    with torch.no_grad():
        for average, p in zip(averages, parameters):
            p.copy_(average)
    pipe = components.pipeline(tokenizer, text_encoder.eval(), unet.eval(), vae)
    pipe.to("cpu")
    summary = {
        "command": (f"timelab tinyworld train --seed {config.seed} --steps {config.steps} --batch-size "
                    f"{config.batch_size} --device {config.device} --threads {torch.get_num_threads()}"),
        "config": asdict(config),
        "device": str(device),
        "train_seconds": round(time.time() - started, 1),
        "torch_threads": torch.get_num_threads(),
        "final_diffusion_loss": float(np.mean([h[0] for h in history[-100:]])),
        "final_code_loss": float(np.mean([h[1] for h in history[-100:]])),
        "autoencoder_reconstruction_mse": reconstruction_error,
    }
    save_pipeline(pipe, out, summary)
    return summary


def save_pipeline(pipe, out: str | os.PathLike, summary: dict) -> Path:
    """Write the pipeline folder (safetensors) plus ``training.json``, replacing ``out`` only when done."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tinyworld-", dir=out.parent))
    staging.chmod(0o755)
    pipe.save_pretrained(staging, safe_serialization=True)
    write_tokenizer_files(staging / "tokenizer")  # vocab.json + merges.txt for older transformers too
    (staging / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    if out.exists():
        keep = [p for p in out.iterdir() if p.name == "README.md"]  # the model card is written by measure
        for p in keep:
            shutil.copy2(p, staging / p.name)
        shutil.rmtree(out)
    os.replace(staging, out)
    return out


def _run(args: argparse.Namespace) -> int:
    config = TrainConfig(seed=args.seed, steps=args.steps, device=args.device, batch_size=args.batch_size)
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    summary = train(config, args.out)
    print(json.dumps(summary, indent=2))
    return 0


def register(subparsers) -> None:
    """Add ``timelab tinyworld train`` and ``timelab tinyworld measure`` to the command line."""
    from . import MODEL_DIR, measure

    tinyworld = subparsers.add_parser("tinyworld", help="the TinyWorld synthetic world and model")
    commands = tinyworld.add_subparsers(dest="tinyworld_command", required=True, metavar="ACTION")
    parser = commands.add_parser("train", help="train TinyWorld from a seed and save the pipeline folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--out", type=Path, default=MODEL_DIR, help=f"output folder (default {MODEL_DIR})")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.set_defaults(run=_run)
    measure.register(commands)
