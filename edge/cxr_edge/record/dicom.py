"""The result as DICOM objects in the source image's study, written with highdicom: a structured report after
TID 1500 (Measurement Report), which software reads, and a secondary capture of the heatmap with the result burned
in, which any viewer shows. Both copy the patient and study of the source, sit in series of their own and take
their UIDs from the source's SOP Instance UID and the bundle (cxr_edge.record.uids).

How the result is encoded follows IHE AI Results (AIR) where it says how: the box is the observer, as a device,
with its name, manufacturer, model and a serial number (the bundle's manifest sha256); the algorithm is named in
an Algorithm Identification (TID 4019) with its version and parameters; the finding is a coded qualitative
evaluation; the probabilities are numeric measurements; the measurement group references the source image and
has a tracking identifier and UID.
"""

from __future__ import annotations

import contextlib
import datetime
import warnings
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from cxr_edge import DISCLAIMER, __version__
from cxr_edge.inputs.dicom import OWN_MANUFACTURER, OWN_SERIES
from cxr_edge.labels import LABELS, in_words
from cxr_edge.language import in_source_language
from cxr_edge.record.codes import (
    ALGORITHM_FAMILY,
    CHEST_XRAY_REPORT,
    FINDING,
    LABEL_CODES,
    NO,
    NO_UNITS,
    NOTICE,
    PRIVATE_SCHEME,
    PROBABILITY_CODES,
    REFERRAL,
    REFERRAL_REASON,
    YES,
)
from cxr_edge.record.uids import derived_uid

SR_SERIES_NUMBER = 9901  # high, so that viewers list the box's series after the unit's
CAPTURE_SERIES_NUMBER = 9902
SERIES_DESCRIPTION = OWN_SERIES  # what tells the box its own results from radiographs when they come back
MANUFACTURER = OWN_MANUFACTURER

# Type 2 attributes of the patient, study and series modules that X-ray units leave out: present but empty in the
# copy the objects are made from (highdicom, rightly, will not copy what is not there).
PIXELS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")


@dataclass(frozen=True)
class Producer:
    """The bundle and box that made a result, as the objects name them."""

    name: str  # the bundle's name (its folder or archive)
    sha256: str  # the bundle's manifest sha256: its identity
    signer: str  # the signer's key fingerprint, or "unsigned"
    threshold: float
    min_confidence: float
    site: bool  # the threshold is this site's, not the bundle's
    version: str = __version__

    @classmethod
    def of(cls, classifier) -> "Producer":
        bundle, origin = classifier.bundle, classifier.bundle.origin
        return cls(bundle.path.stem, bundle.manifest_sha256,
                   origin.fingerprint if origin is not None and origin.fingerprint else "unsigned",
                   classifier.threshold, classifier.min_confidence, classifier.site is not None)

    @property
    def device_uid(self) -> str:
        return derived_uid("device", self.sha256)


class NotRecordable(ValueError):
    """A source that no DICOM object can refer to (no SOP Instance UID)."""


def source_header(ds: Dataset) -> tuple[Dataset, list[str]]:
    """A copy of the source's header (no pixel data) the objects can be made from, and what had to be filled in:
    empty Type 2 values, and a Study or Series Instance UID derived from the SOP Instance UID when the file has
    none (the objects then sit in a study of their own: the note says so)."""
    sop = str(ds.get("SOPInstanceUID", "") or "")
    if not sop:
        raise NotRecordable("the file has no SOP Instance UID, so no report can refer to it")
    with _quiet():  # pydicom's warnings quote the values they find malformed
        return _copied(ds, sop)


def _copied(ds: Dataset, sop: str) -> tuple[Dataset, list[str]]:
    header = Dataset()
    for element in ds:
        if element.tag.group > 0x0002 and element.keyword not in PIXELS:
            header.add(element)
    notes = []
    if _blank_malformed_dates(header):
        notes.append("a date or time in the header is malformed: it is left empty in the SR and heatmap")
    for keyword in TYPE_2:
        if keyword not in header:
            setattr(header, keyword, "")
    if not header.get("StudyInstanceUID"):
        header.StudyInstanceUID = derived_uid("StudyInstanceUID", sop)
        notes.append("the image has no Study Instance UID: its SR and heatmap are in a study of their own, with a "
                     "UID derived from the image's SOP Instance UID")
    if not header.get("SeriesInstanceUID"):  # referenced as the evidence's series only
        header.SeriesInstanceUID = derived_uid("SeriesInstanceUID", sop)
    if "SOPClassUID" not in header:
        header.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    return header, notes


@in_source_language
def structured_report(source: Dataset, result, producer: Producer) -> Dataset:
    """The TID 1500 Measurement Report of `result` (a classified cxr_edge.run.classify.Result) on `source` (from
    source_header)."""
    import highdicom as hd

    sop = source.SOPInstanceUID
    now = datetime.datetime.now(datetime.timezone.utc).astimezone()
    device = hd.sr.ObserverContext(
        observer_type=Code("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=producer.device_uid, name=f"cxr-edge {producer.name}", manufacturer_name=MANUFACTURER,
            model_name=producer.name, serial_number=producer.sha256))
    algorithm = hd.sr.AlgorithmIdentification(
        name=producer.name, family=ALGORITHM_FAMILY, version=f"cxr-edge {producer.version}",
        parameters=_parameters(producer))
    index = LABELS.index(result.label)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=derived_uid("tracking", sop, producer.sha256),
                                                     identifier=f"cxr-edge {result.label}"),
        algorithm_id=algorithm,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(FINDING, LABEL_CODES[result.label]),
            hd.sr.QualitativeEvaluation(REFERRAL, YES if result.refer else NO),
        ],
        measurements=[hd.sr.Measurement(name=PROBABILITY_CODES[label], value=round(float(p), 6), unit=NO_UNITS)
                      for label, p in zip(LABELS, result.probs)],
    )
    texts = [(NOTICE, f"{DISCLAIMER} Label: {in_words(result.label)} (probability "
                      f"{result.probs[index]:.3f})" + (", refer to a clinician." if result.refer else "."))]
    texts += [(REFERRAL_REASON, reason.words()) for reason in result.reasons]
    for name, value in texts:
        group[0].ContentSequence.append(hd.sr.TextContentItem(name=name, value=value[:1024],
                                           relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=CHEST_XRAY_REPORT, imaging_measurements=[group])
    with _quiet():
        sr = hd.sr.ComprehensiveSR(
            evidence=[source], content=report[0],
            series_instance_uid=derived_uid("sr-series", source.StudyInstanceUID, producer.sha256),
            series_number=SR_SERIES_NUMBER, sop_instance_uid=derived_uid("sr", sop, producer.sha256),
            instance_number=int(source.get("InstanceNumber") or 1), manufacturer=MANUFACTURER,
            is_complete=True, is_final=False, is_verified=False,
            series_description=SERIES_DESCRIPTION, content_date=now.date(), content_time=now.time(),
            software_versions=f"cxr-edge {producer.version}", manufacturer_model_name=producer.name)
    sr.CodingSchemeIdentificationSequence = [_private_scheme()]
    return sr


@in_source_language
def heatmap_capture(source: Dataset, result, picture: np.ndarray, producer: Producer) -> Dataset:
    """A secondary capture of `picture` (RGB uint8: the heatmap over the image, the banner burned in)."""
    import highdicom as hd

    sop = source.SOPInstanceUID
    with _quiet():
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source, pixel_array=np.ascontiguousarray(picture, dtype=np.uint8),
            photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
            series_instance_uid=derived_uid("capture-series", source.StudyInstanceUID, producer.sha256),
            series_number=CAPTURE_SERIES_NUMBER, sop_instance_uid=derived_uid("capture", sop, producer.sha256),
            instance_number=int(source.get("InstanceNumber") or 1), manufacturer=MANUFACTURER,
            patient_orientation=_orientation(source), laterality=None,
            series_description=SERIES_DESCRIPTION, software_versions=f"cxr-edge {producer.version}",
            manufacturer_model_name=producer.name)
    sc.BurnedInAnnotation = "YES"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = (f"cxr-edge {producer.name}: occlusion heatmap of {in_words(result.label)}; "
                                f"{DISCLAIMER}")[:1024]
    sc.SourceImageSequence = [_reference(source)]
    # with the body part named, Laterality (Type 2C, for paired parts only) is rightly absent
    sc.BodyPartExamined = source.get("BodyPartExamined") or "CHEST"
    return sc


def _blank_malformed_dates(header: Dataset) -> bool:
    """Dates and times units write wrongly ("1970-01-01" for 19700101) would stop highdicom: empty them."""
    from pydicom.valuerep import DA, DT, TM

    parse = {"DA": DA, "TM": TM, "DT": DT}
    blanked = False
    for element in header:
        if element.VR in parse and element.value not in (None, ""):
            try:
                for value in (element.value if element.VM > 1 else [element.value]):
                    parse[element.VR](value)
            except (ValueError, TypeError):
                element.value = ""
                blanked = True
    return blanked


@contextlib.contextmanager
def _quiet():
    """highdicom warns about odd patient names by quoting them: never on the box's stderr or in its log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _parameters(producer: Producer) -> list[str]:
    """One "name=value" TEXT each (highdicom 0.28 writes only the keys of the dict its signature asks for)."""
    whose = "site" if producer.site else "bundle"
    return [f"manifest sha256={producer.sha256}", f"signer fingerprint={producer.signer}",
            f"screening threshold ({whose})={producer.threshold:.4f}",
            f"confidence floor={producer.min_confidence:.3f}"]


def _orientation(source: Dataset) -> tuple[str, str]:
    value = source.get("PatientOrientation")
    if value and len(value) == 2:
        return tuple(str(v) for v in value)
    return ("L", "F")  # a PA chest film as displayed: the patient's left on the viewer's right, feet down


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    return item


def _private_scheme() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "cxr-edge codes"
    item.CodingSchemeResponsibleOrganization = "cxr-edge project"
    return item
