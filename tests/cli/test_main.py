import importlib.metadata

import pytest

import nnunet_mae
from nnunet_mae.cli.main import main


def installed_distribution() -> importlib.metadata.Distribution:
    """The installed nnunet_mae in site-packages (not a build's egg-info in the working directory)."""
    import site

    found = [d for d in importlib.metadata.distributions(path=[*site.getsitepackages(), site.getusersitepackages()])
             if d.metadata["Name"] == "nnunet_mae"]
    assert len(found) == 1, "nnunet_mae is not installed (pip install -e .)"
    return found[0]


def test_version_is_the_installed_distribution_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"nnunet_mae {nnunet_mae.__version__}"
    assert installed_distribution().version == nnunet_mae.__version__  # setup.py reads the same string
