"""genbench plugin: autoregressive Transformers. Registration only; torch is imported when a job runs."""

from genbench import ModelSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def genbench_register_models(register):
    register(ModelSpec(
        name="ar-transformer", family="ar", tasks=("text",), cls="genbench_autoregressive.model:ByteTransformer",
        description="Decoder-only causal Transformer over UTF-8 bytes (vocab 256, context 128), exact likelihood",
    ))
    register(ModelSpec(
        name="ar-pixel", family="ar", tasks=("image",), cls="genbench_autoregressive.model:PixelTransformer",
        description="Causal Transformer over quantized pixels in raster order (BOS-shifted), exact likelihood",
    ))
    register(ModelSpec(
        name="ar-points", family="ar", tasks=("points",), cls="genbench_autoregressive.model:PointsTransformer",
        description="Causal Transformer over a 2-D point's two binned coordinates (64 bins each), exact likelihood",
    ))
