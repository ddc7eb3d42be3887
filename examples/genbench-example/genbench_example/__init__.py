"""genbench plugin genbench-example: registration only (no torch import here)."""

from genbench import ModelSpec, hookimpl


@hookimpl
def genbench_register_models(register):
    register(ModelSpec(name="example-gan", family="gan", tasks=("image",),
                       cls="genbench_example.model:ExampleGAN", description="example-gan: a genbench-example model"))
