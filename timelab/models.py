"""Loading text-to-image pipelines by name: TinyWorld, the random-weight test models, hub ids, folders.

One loader for every model the project uses:

    "tinyworld"          the trained TinyWorld model shipped in the package (offline)
    "tiny-random"        tiny random-weight SD 1.x look-alike (also "tiny-random-sd2", "tiny-random-sdxl"):
                         plumbing only, its images are noise (see :mod:`timelab.testing`)
    "sd14-random"        Stable Diffusion 1.4's exact architecture with random weights
    "tiny-random-pixart" tiny random-weight PixArt-alpha, Sana, SD3, FLUX, Kandinsky 3 and HunyuanDiT (also
                         "tiny-random-sana", "tiny-random-sd3", "tiny-random-flux", "tiny-random-kandinsky3",
                         "tiny-random-hunyuan"), with stand-in T5/Gemma/BERT tokenizers (:mod:`timelab.testing`)
    anything else        a diffusers hub id ("CompVis/stable-diffusion-v1-4") or a local folder

Loading never changes torch's thread count or any other setting of the caller's session, and is quiet
unless ``verbose`` (:mod:`timelab.quiet`).
"""

from __future__ import annotations

import os

import torch

from .devices import pick_device
from .quiet import quiet_loading
from .tinyworld import MODEL_DIR

TINYWORLD = "tinyworld"
SD14 = "CompVis/stable-diffusion-v1-4"
TINY_RANDOM = "tiny-random"  # random weights: for plumbing only, its images are noise
SD14_RANDOM = "sd14-random"  # Stable Diffusion 1.4's exact architecture, random weights
# Names of the random-weight pipelines built from configs -> (builder name in timelab.testing, flavour).
RANDOM_MODELS = {
    TINY_RANDOM: ("tiny_pipeline", "sd1"),
    "tiny-random-sd2": ("tiny_pipeline", "sd2"),
    "tiny-random-sdxl": ("tiny_pipeline", "sdxl"),
    SD14_RANDOM: ("sd14_shaped_pipeline", None),
    "tiny-random-pixart": ("tiny_transformer_pipeline", "pixart"),
    "tiny-random-sana": ("tiny_transformer_pipeline", "sana"),
    "tiny-random-sd3": ("tiny_transformer_pipeline", "sd3"),
    "tiny-random-flux": ("tiny_transformer_pipeline", "flux"),
    "tiny-random-kandinsky3": ("tiny_transformer_pipeline", "kandinsky3"),
    "tiny-random-hunyuan": ("tiny_transformer_pipeline", "hunyuan"),
}


def _random_pipeline(name: str):
    from . import testing  # builds with diffusers and transformers: loaded on first use, not by `import timelab`

    builder, flavour = RANDOM_MODELS[name]
    return getattr(testing, builder)(flavour) if flavour else getattr(testing, builder)()


def _local_folder(name_or_path: str) -> str:
    """``name_or_path`` as diffusers should get it; a local-looking path must be a pipeline's folder.

    Local-looking: absolute, starting with ``.`` or ``~``, or an existing path. Such a path that is no
    folder, or a folder without ``model_index.json``, raises (naming it) here, instead of diffusers
    taking it for a hub id and failing on the network. Anything else (a hub id) is returned unchanged.
    """
    expanded = os.path.expanduser(name_or_path)
    if not (os.path.isabs(name_or_path) or name_or_path.startswith((".", "~")) or os.path.exists(expanded)):
        return name_or_path
    shown = repr(name_or_path) + ("" if expanded == name_or_path else f" ({expanded})")
    wanted = "give the folder of a saved diffusers pipeline (it holds model_index.json)"
    if not os.path.exists(expanded):
        raise FileNotFoundError(f"no model folder at {shown}: {wanted}, a hub id like {SD14!r}, "
                                f"or one of {TINYWORLD!r}, {', '.join(map(repr, RANDOM_MODELS))}")
    if not os.path.isdir(expanded):
        raise ValueError(f"model path {shown} is a file, not a folder: {wanted}")
    if not os.path.isfile(os.path.join(expanded, "model_index.json")):
        raise ValueError(f"model folder {shown} has no model_index.json, so it is not a saved diffusers "
                         "pipeline: give the folder that pipe.save_pretrained(folder) wrote")
    return expanded


def _from_pretrained(name_or_path: str, dtype: torch.dtype, variant: str | None = None):
    if name_or_path != TINYWORLD:
        name_or_path = _local_folder(name_or_path)  # before diffusers, which takes a missing folder for a hub id
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    if name_or_path == TINYWORLD:
        return StableDiffusionPipeline.from_pretrained(MODEL_DIR, dtype=dtype, local_files_only=True)
    files = {"variant": variant} if variant is not None else {}
    extra = {"safety_checker": None, "requires_safety_checker": False}
    try:
        return AutoPipelineForText2Image.from_pretrained(name_or_path, dtype=dtype, **files, **extra)
    except TypeError:  # pipelines without a safety checker reject those arguments
        return AutoPipelineForText2Image.from_pretrained(name_or_path, dtype=dtype, **files)


def load_pipeline(name_or_path: str | os.PathLike = TINYWORLD, device: str | None = None,
                  dtype: torch.dtype | None = None, verbose: bool | None = None, variant: str | None = None):
    """Load a text-to-image pipeline ready to edit (names: see the module docstring).

    A hub id needs the network the first time. A local path (absolute, starting with ``.`` or ``~``,
    or one that exists) must be a folder holding ``model_index.json``; anything else raises
    ``FileNotFoundError``/``ValueError`` naming it, before diffusers is asked. ``dtype`` defaults to
    float16 on a GPU and float32 elsewhere. ``variant`` picks which weight files of a hub id or folder to
    read (``"fp16"``: the half-size files that checkpoints such as SD 1.4 ship beside the full ones, half
    the download; diffusers raises if the checkpoint has none); TinyWorld and the random-weight models
    have no variants, so giving one for them raises ``ValueError``. The safety checker is left out, as in the paper's
    experiments. Library warnings and loading bars are hidden unless ``verbose`` (default:
    ``$TIMELAB_VERBOSE``).
    """
    device = pick_device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    name = str(name_or_path)
    if variant is not None and (name in RANDOM_MODELS or name == TINYWORLD):
        raise ValueError(f"{name!r} has no weight variants (variant={variant!r}): leave variant out for it")
    with quiet_loading(verbose):
        pipe = (_random_pipeline(name).to(dtype=dtype) if name in RANDOM_MODELS
                else _from_pretrained(name, dtype, variant))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
