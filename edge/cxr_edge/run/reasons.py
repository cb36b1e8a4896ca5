"""The box's referral reasons (and the screen-positive explanation of a label) as short codes: the terminal table shows them, and site calibration and run
monitoring count the reasons that refer an image whatever the threshold."""

from __future__ import annotations

# The box's fixed referral words (classify.py, dicom.py), by how each reason starts: code, meaning.
REASON_CODES = (
    ("image too small", "small", "image too small to be a radiograph"),
    ("extreme aspect ratio", "aspect", "extreme aspect ratio for a chest radiograph"),
    ("near-constant pixels", "flat", "near-constant pixels"),
    ("not a frontal view", "lateral", "DICOM header: lateral or oblique view, not frontal PA/AP"),
    ("the DICOM header names a body part", "body-part", "DICOM header: body part other than the chest"),
    ("the DICOM header names a modality", "modality", "DICOM header: modality other than CR/DX"),
    ("a 'for processing' image", "raw", "DICOM header: 'for processing' (raw detector) image"),
    ("out-of-distribution", "ood", "unlike the radiographs the model learned from (out-of-distribution)"),
    ("low confidence", "low-conf", "the label's probability is below the confidence floor"),
    ("unverified model", "unverified", "the bundle did not pass its parity gate (--allow-unverified)"),
    # not a reason to refer: why a disease label stands over a longer "normal" bar
    ("screen-positive", "screen", "abnormal because the probability of an abnormal finding passed the screening "
                                  "threshold, though normal is the most probable single class"),
)
OTHER = ("other", "another reason: see the CSV or JSON report")
# Reasons that refer an image whatever the stage 1 threshold: calibration and monitoring leave those images out.
THRESHOLD_FREE = ("ood", "lateral", "body-part", "modality", "raw", "small", "aspect", "flat")


def reason_codes(reason: str) -> list[str]:
    """The codes of a row's reasons ("; "-separated text), in order."""
    codes = []
    for part in filter(None, (p.strip() for p in reason.split("; "))):
        codes.append(next((code for prefix, code, _ in REASON_CODES if part.startswith(prefix)), OTHER[0]))
    return codes
