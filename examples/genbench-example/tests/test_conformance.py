from genbench.testing import assert_conforms


def test_plugin_conforms_to_the_genbench_contract():
    assert_conforms("example")


def test_model_conforms_with_the_pytest_fixture(genbench_conformance):
    genbench_conformance("example-gan")
