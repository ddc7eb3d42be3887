"""genbench plugin: RealNVP normalising flows. Registration only; torch is imported when a job runs."""

from genbench import ModelSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def genbench_register_models(register):
    register(ModelSpec(
        name="realnvp", family="flow", tasks=("digits", "points"), cls="genbench_flow.model:RealNVP",
        description="RealNVP, affine couplings; exact likelihood (dequantized pixels in logit space on images)",
    ))
