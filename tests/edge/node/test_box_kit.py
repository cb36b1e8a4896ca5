"""`make box-kit`: the offline installer. Built here for this machine's platform only (the full kit's other
targets are the same `pip download` with other tags; `make pi-check` installs the aarch64 one in the emulated
Pi with no network), then installed into a fresh folder from the kit alone."""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HOST = f"{platform.machine()} {sys.version_info[0]}.{sys.version_info[1]}"


def offline(command: list[str]) -> list[str]:
    """Run with no network where this machine lets us (a network namespace of its own, as root), so that
    '--no-index' is shown by the install working, not only by the flag being there."""
    if os.geteuid() == 0 and shutil.which("unshare") and subprocess.run(
            ["unshare", "--net", "true"], capture_output=True).returncode == 0:
        return ["unshare", "--net", *command]
    return command


@pytest.fixture(scope="module")
def box_kit(tmp_path_factory):
    kit = tmp_path_factory.mktemp("box") / "box-kit"
    env = {**os.environ, "KIT": str(kit), "BIN": str(Path(sys.executable).parent),
           "BOX_KIT_TARGETS": HOST.replace(" ", ":")}
    result = subprocess.run(["bash", "scripts/box_kit.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"wrote {kit}/" in result.stdout
    return kit


def install(kit: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PYTHON"] = python
    return subprocess.run(offline(["sh", str(kit / "install.sh"), *args]), env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_kit_holds_every_wheel_and_installs_with_no_index(box_kit, tmp_path, edge_bundle):
    wheels = sorted(p.name for p in (box_kit / "wheels").glob("*.whl"))
    for name in ("cxr_edge-", "ai_edge_litert-2.3.0-", "numpy-", "pillow-", "pydicom-", "python_gdcm-",
                 "imagecodecs-", "cryptography-", "click-"):
        assert any(w.startswith(name) for w in wheels), (name, wheels)
    assert not any(w.startswith(("tensorflow", "keras", "jax")) for w in wheels), wheels
    assert (box_kit / "wheels" / "TARGETS").read_text() == HOST + "\n"

    target = tmp_path / "opt" / "cxr-edge"
    result = install(box_kit, str(target), str(edge_bundle))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Installing cxr-edge into {target} (Python {HOST.split()[1]}, {HOST.split()[0]}), from " \
           f"{box_kit}/wheels only" in result.stdout
    assert "cxr-edge 0.1.0, interpreter: ai-edge-litert 2.3.0" in result.stdout
    assert "self-test" in result.stdout  # `cxr-edge info BUNDLE` ran on the installed box
    assert f"Installed: {target}/bin/cxr-edge" in result.stdout
    frozen = subprocess.run([str(target / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True).stdout.lower()
    assert "cxr-edge==0.1.0" in frozen and "tensorflow" not in frozen and "keras" not in frozen
    # the compiled catalogues and the captions' font come in the wheel: the box speaks every language, compiling
    # nothing, and draws its captions' accents
    spoken = subprocess.run([str(target / "bin" / "python"), "-c",
                             "from cxr_edge import language, notice; from cxr_edge.pictures.heatmap import FONT; "
                             "language.set_default('es'); print(*language.languages(), FONT.is_file(), notice())"],
                            capture_output=True, text=True)
    from cxr_edge.language import languages

    assert spoken.stdout.split()[:len(languages()) + 1] == [*languages(), "True"], spoken.stdout + spoken.stderr
    assert "diagnóstico" in spoken.stdout

    again = install(box_kit, str(target))  # running it again upgrades in place: nothing to fetch, no error
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.slow
def test_kit_refuses_a_platform_it_has_no_wheels_for(box_kit, tmp_path):
    kit = tmp_path / "kit"
    shutil.copytree(box_kit, kit)
    (kit / "wheels" / "TARGETS").write_text("aarch64 3.13\n")
    (kit / "SHA256SUMS").unlink()
    result = install(kit, str(tmp_path / "box"))
    assert result.returncode == 1
    arch, version = HOST.split()
    assert result.stderr == (f"install.sh: this kit has no wheels for {arch} with Python {version} (it has: "
                             f"aarch64 3.13).\nMake one that does, on a machine with the package registry: "
                             f"make box-kit BOX_KIT_TARGETS={arch}:{version}\n")
    assert not (tmp_path / "box").exists()


@pytest.mark.slow
def test_kit_refuses_a_damaged_copy(box_kit, tmp_path):
    kit = tmp_path / "kit"
    shutil.copytree(box_kit, kit)
    wheel = next((kit / "wheels").glob("click-*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-10])
    result = install(kit, str(tmp_path / "box"))
    assert result.returncode == 1
    assert result.stderr.endswith("install.sh: the kit's files do not match SHA256SUMS: copy the kit again\n")
    assert not (tmp_path / "box").exists()
