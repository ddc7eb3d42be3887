"""genbench plugin: the classic MLP GAN. Registration only; torch is imported when a job runs."""

from genbench import ModelSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def genbench_register_models(register):
    register(ModelSpec(
        name="gan-mlp", family="gan", tasks=("image", "points"), cls="genbench_gan.model:MLPGAN",
        description="Classic MLP GAN: z(100) -> 128 -> image, non-saturating loss, Adam 1e-4",
    ))
