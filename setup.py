"""Install nnunet_mae. Besides the package, installs `nnunet_mae_ext.pth` into site-packages: at every
interpreter start it appends the package's trainer folder to `nnUNet_extTrainer`, so nnU-Net's
command line finds the trainers with no set-up. Works for `pip install .` and `pip install -e .`.

Why the wheel is amended after it is built (one function, both wheel commands), and not something shorter:
- a `build_py` hook that copies the .pth into build_lib (pytest-cov's and pytest-socket's way) reaches regular
  wheels only: setuptools' PEP 660 editable wheel holds its own path hook and nothing else from build_lib, so
  `pip install -e .` (the README's install, and CI's) would lose the zero-config lookup;
- `data_files` install relative to the installation prefix, not into site-packages (purelib), which differs
  between virtual environments, `--user` and distribution layouts;
- `extra_path` is deprecated and ignored by wheels.
Adding the file and its RECORD line to each finished wheel works for every install mode pip has, and pip removes
the file on uninstall (it is in RECORD). tests/test_packaging.py builds a wheel and checks both.
"""

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.editable_wheel import editable_wheel

PTH_NAME = "nnunet_mae_ext.pth"
# one line, executed by Python's `site` at start-up; does nothing once nnunet_mae is uninstalled
PTH_LINE = ('import importlib.util; importlib.util.find_spec("nnunet_mae") and '
            '__import__("nnunet_mae.nnunet_ext").nnunet_ext.register_with_nnunet()\n')


def add_pth_to_wheels(dist_dir: str) -> None:
    """Add the .pth file at the root of each wheel in dist_dir (site-packages once installed) and to its RECORD."""
    data = PTH_LINE.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    for wheel in Path(dist_dir).glob("*.whl"):
        with zipfile.ZipFile(wheel) as zin:
            if PTH_NAME in zin.namelist():
                continue
            entries = [(info, zin.read(info)) for info in zin.infolist()]
        tmp = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
            zout.writestr(PTH_NAME, data)
            for info, content in entries:
                if info.filename.endswith(".dist-info/RECORD"):
                    content += f"{PTH_NAME},sha256={digest},{len(data)}\n".encode()
                zout.writestr(info, content)
        os.replace(tmp, wheel)


class BdistWheelWithPth(bdist_wheel):
    def run(self):
        super().run()
        add_pth_to_wheels(self.dist_dir)


class EditableWheelWithPth(editable_wheel):
    def run(self):
        super().run()
        add_pth_to_wheels(self.dist_dir)


setup(
    name="nnunet_mae",
    version=re.search(r'__version__ = "([^"]+)"', Path(__file__).with_name("nnunet_mae").joinpath(
        "__init__.py").read_text()).group(1),
    description="ViT segmentation and masked-autoencoder self-pre-training (MAE, GMIM) as nnU-Net v2 trainers",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunet_mae", "nnunet_mae.*"]),
    # Ranges = what the code needs and what was tested (documentation/compatibility.md), no upper pins without a
    # known break, and only what the package imports. torch is never pinned to one build: an existing torch that
    # matches the user's GPU driver is kept. torch >= 2.5: torch.serialization.safe_globals (safe loading),
    # torch.amp.GradScaler(device) (fp16 on any device), SDPA.
    install_requires=[
        "torch>=2.5",
        "nnunetv2>=2.8.1",
        "dynamic-network-architectures>=0.4.4",  # PrimusV3 (architectures/primus_mae.py)
        "timm>=1.0",  # apply_keep_indices_nlc (rotary embedding of kept tokens)
        "batchgenerators>=0.25.1",
        "batchgeneratorsv2>=0.3",
        "SimpleITK>=2.2",
        "numpy>=1.24",
        "einops>=0.8",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=8", "ruff>=0.6"]},
    entry_points={"console_scripts": ["nnunet_mae=nnunet_mae.cli.main:main"]},
    cmdclass={"bdist_wheel": BdistWheelWithPth, "editable_wheel": EditableWheelWithPth},
)
