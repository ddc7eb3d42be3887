"""genbench plugin: variational autoencoders. Registration only; torch is imported when a job runs."""

from genbench import ModelSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def genbench_register_models(register):
    register(ModelSpec(
        name="vae-mlp", family="vae", tasks=("image", "points"), cls="genbench_vae.model:MLPVAE",
        description="MLP VAE, Bernoulli pixels on binarized data, ELBO training, IWAE(k=64) evaluation",
    ))
    register(ModelSpec(
        name="vae-conv", family="vae", tasks=("image",), cls="genbench_vae.model:ConvVAE",
        description="Small convolutional VAE (two stride-2 convs), Bernoulli pixels, IWAE(k=64) evaluation",
    ))
