"""install.py: OpenCV for the pack without a second OpenCV distribution next to another's."""

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def install():
    spec = importlib.util.spec_from_file_location("hifi_install", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_versions(monkeypatch, module, installed):
    def version(name):
        if name in installed:
            return installed[name]
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(module.metadata, "version", version)
    calls = []
    monkeypatch.setattr(module.subprocess, "call", lambda command: calls.append(command) or 0)
    return calls


@pytest.mark.parametrize("existing", ["opencv-python", "opencv-contrib-python", "opencv-python-headless",
                                      "opencv-contrib-python-headless"])
def test_another_packs_opencv_is_used_and_none_is_added(install, monkeypatch, capsys, existing):
    calls = fake_versions(monkeypatch, install, {existing: "4.10.0.84", "numpy": "2.0"})
    assert install.main() == 0 and calls == []
    assert existing in capsys.readouterr().out


def test_without_any_opencv_the_headless_build_is_installed(install, monkeypatch):
    calls = fake_versions(monkeypatch, install, {})
    assert install.main() == 0
    assert calls and calls[0][1:] == ["-m", "pip", "install", "opencv-python-headless>=4.8"]


def test_two_opencv_distributions_are_reported_with_the_fix(install, monkeypatch, capsys):
    fake_versions(monkeypatch, install, {"opencv-python": "4.10", "opencv-python-headless": "4.10"})
    install.main()
    assert "more than one OpenCV" in capsys.readouterr().err


def test_this_environment_has_one_usable_opencv(install):
    import cv2

    assert len(install.installed_opencv()) == 1
    assert callable(cv2.DISOpticalFlow_create)
