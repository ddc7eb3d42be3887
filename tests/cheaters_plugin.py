"""The plugin that registers :mod:`cheaters`' models and metric, importing none of their code (as an entry
module should: the models and the metric load lazily, in the processes where plugin code runs)."""

import genbench
from genbench import MetricSpec, ModelSpec


class CheatersPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_models(register):
        register(ModelSpec("gan-honest", "gan", ("image", "points"), "genbench_gan.model:MLPGAN", "gan-mlp, honest"))
        register(ModelSpec("gan-cheat", "gan", ("image", "points"), "cheaters:CheatingGAN",
                           "gan-mlp, patching everything it can reach"))


class CheatingMetricPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_metrics(register):
        register(MetricSpec("cheat-metric", ("image",), "cheaters:make_cheating_metric", "", True,
                            "a metric whose factory tries to add 500 to every FD"))


class CheatingReporterPlugin:
    @staticmethod
    @genbench.hookimpl
    def genbench_register_reporters(register):
        register(genbench.ReporterSpec("cheat-report", "cheaters:write_cheating_report",
                                       "a report writer that rewrites genbench's files"))
