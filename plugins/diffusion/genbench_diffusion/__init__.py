"""genbench plugin: a small MLP denoising diffusion model. Registration only; torch is imported when a job runs."""

from genbench import ModelSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def genbench_register_models(register):
    register(ModelSpec(
        name="ddpm-mlp", family="diffusion", tasks=("digits", "points"), cls="genbench_diffusion.model:MLPDDPM",
        description="MLP epsilon-prediction DDPM, linear schedule T=1000; genbench samples it (DDIM 50 steps, DDPM)",
    ))
