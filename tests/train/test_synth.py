import hashlib

import numpy as np
from PIL import Image

from cxr_train.synth import make_image, image_rng, write_dataset


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_matches_the_database(synth_small):
    for folder in ("COVID", "Lung_Opacity", "Normal", "Viral Pneumonia"):
        images = sorted((synth_small / folder / "images").glob("*.png"))
        masks = sorted((synth_small / folder / "masks").glob("*.png"))
        assert len(images) == 6 and len(masks) == 6
        img = Image.open(images[0])
        assert img.mode == "L" and img.size == (64, 64)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_dataset(tmp_path / "a", per_class=2, size=48, seed=5)
    b = write_dataset(tmp_path / "b", per_class=2, size=48, seed=5)
    c = write_dataset(tmp_path / "c", per_class=2, size=48, seed=6)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_image_i_does_not_depend_on_how_many_are_made(tmp_path):
    small = write_dataset(tmp_path / "s", per_class=1, size=48, seed=9)
    large = write_dataset(tmp_path / "l", per_class=3, size=48, seed=9)
    name = "COVID/images/COVID-1.png"
    assert (small / name).read_bytes() == (large / name).read_bytes()


def test_findings_add_opacity_inside_the_lungs():
    """Same patient with and without a finding: the diseased image is brighter in the lungs only."""
    size = 96
    for label in ("lung_opacity", "viral_pneumonia", "covid19"):
        diseased = make_image(label, size, image_rng(0, label, 1))
        assert diseased.severity > 0 and diseased.finding_box is not None
        x0, y0, x1, y1 = diseased.finding_box
        assert 0 <= x0 <= x1 < size and 0 <= y0 <= y1 < size
    normal = make_image("normal", size, image_rng(0, "normal", 1))
    assert normal.severity == 0 and normal.finding_box is None
    assert 0.1 < normal.lung_mask.mean() < 0.6


def test_classes_differ_but_overlap():
    """Mean lung brightness differs between classes on average, but not image by image."""
    size = 64
    def lung_mean(label, i):
        img = make_image(label, size, image_rng(1, label, i))
        return img.pixels[img.lung_mask].mean() - img.pixels[~img.lung_mask].mean()
    normal = np.array([lung_mean("normal", i) for i in range(20)])
    covid = np.array([lung_mean("covid19", i) for i in range(20)])
    assert covid.mean() > normal.mean()
    assert covid.min() < normal.max()  # overlapping: not separable by one number


def test_synth_dicom_writes_dx_files_dciodvfy_accepts_in_every_syntax(tmp_path):
    """`cxr-train synth --dicom`: a DR unit's files, one syntax after another; dciodvfy finds no error in any (it
    cannot read a deflated dataset: that one is judged inflated); the box reads each as it reads the same picture
    uncompressed: the same pixels for a lossless syntax, within 4 gray levels on average for a lossy one."""
    import subprocess

    import pydicom
    from click.testing import CliRunner

    from cxr_edge.inputs.dicom import read_dicom
    from cxr_train.cli import main
    from cxr_train.synth_dicom import LOSSY, SYNTAXES, write_dicom

    from tests.peers import tool

    names = list(SYNTAXES)
    written = CliRunner().invoke(main, ["synth", str(tmp_path / "unit"), "--per-class", "3", "--size", "128",
                                        "--dicom", *(arg for name in names for arg in ("--syntax", name))])
    assert written.exit_code == 0, written.output
    files = sorted((tmp_path / "unit").rglob("*.dcm"))
    assert len(files) == 12
    seen = set()
    for path in files:
        ds = pydicom.dcmread(path)
        name = next(n for n, uid in SYNTAXES.items() if uid == ds.file_meta.TransferSyntaxUID)
        seen.add(name)
        judged = path
        if name == "deflated":
            judged = tmp_path / "inflated.dcm"
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
            ds.save_as(judged, enforce_file_format=True)
        verdict = subprocess.run([tool("dciodvfy"), str(judged)], capture_output=True, text=True)
        errors = [line for line in (verdict.stdout + verdict.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (name, errors)
        assert (ds.Modality, ds.ViewPosition, ds.BodyPartExamined) == ("DX", "PA", "CHEST")
        label = {"COVID": "covid19", "Normal": "normal", "Lung_Opacity": "lung_opacity",
                 "Viral Pneumonia": "viral_pneumonia"}[path.parent.parent.name]
        picture = make_image(label, 128, image_rng(0, label, int(path.stem.rsplit("-", 1)[1]))).pixels
        bits = 8 if name == "jpeg-baseline" else 12
        stored = picture.astype(np.uint16) * (1 if bits == 8 else 16) + (0 if bits == 8 else 8)
        reference = write_dicom(tmp_path / "reference.dcm", stored, bits, pydicom.uid.ExplicitVRLittleEndian,
                                WindowCenter=ds.WindowCenter, WindowWidth=ds.WindowWidth)
        gray, expected = (read_dicom(f).pixels.astype(np.int16) for f in (path, reference))
        difference = np.abs(gray - expected).mean()
        assert difference < 4 if name in LOSSY else difference == 0, (name, difference)
    assert seen == set(names)
