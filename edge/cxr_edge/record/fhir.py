"""The result for an EHR: FHIR R4 JSON, one transaction Bundle per study (or per image that is not DICOM).

Each image gets a DiagnosticReport (status `preliminary`, LOINC 36554-4 "XR Chest Single view" as its code, the
notice in its conclusion) with Observations for the label, each probability and the referral; the bundle is one
Device. The subject is the DICOM Patient ID, as a logical reference by identifier (the box does not know the EHR's
Patient ids); the study is an ImagingStudy referred to by its Study Instance UID, as FHIR's ImagingStudy identifier
convention writes it.

Every entry is a conditional create (`ifNoneExist` on its derived identifier, cxr_edge.record.uids), so a Bundle
posted twice makes nothing twice, and the references inside it are its entries' `urn:uuid:` fullUrls, which the
server resolves to the resources it keeps.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cxr_edge import DISCLAIMER
from cxr_edge.labels import LABELS, in_words
from cxr_edge.language import in_source_language
from cxr_edge.record.codes import CHEST_XRAY_REPORT, FINDING, LABEL_CODES, PROBABILITY_CODES, REFERRAL
from cxr_edge.record.uids import derived_urn

SYSTEMS = {"SCT": "http://snomed.info/sct", "DCM": "http://dicom.nema.org/resources/ontology/DCM",
           "LN": "http://loinc.org"}
PRIVATE_SYSTEM = "urn:cxr-edge:codes"  # the 99CXREDGE codes of the SR (cxr_edge.record.codes)
URI = "urn:ietf:rfc:3986"  # identifier system for identifiers that are URIs (our urn:uuid: values)
UCUM = "http://unitsofmeasure.org"
RADIOLOGY = {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}
IMAGING = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging",
           "display": "Imaging"}


@dataclass(frozen=True)
class ImageRecord:
    """What FHIR says about one classified image. `identity`: the DICOM SOP Instance UID, or for other images
    something as stable (the file's sha256)."""

    result: object  # cxr_edge.run.classify.Result, classified
    identity: str
    classified_at: datetime.datetime
    patient_id: str = ""
    study_uid: str = ""
    study_date: str = ""  # DICOM DA and TM of the study, when the header has them
    study_time: str = ""


def coding(code) -> dict:
    system = SYSTEMS.get(code.scheme_designator, PRIVATE_SYSTEM)
    return {"system": system, "code": code.value, "display": code.meaning}


@in_source_language
def transaction(images: list[ImageRecord], producer) -> dict:
    """The transaction Bundle of `images` (one study's, or one image's)."""
    device = _device(producer)
    entries = [_entry(device)]
    for image in images:
        observations = _observations(image, producer, device["identifier"][0]["value"])
        entries += [_entry(r) for r in (*observations, _report(image, producer, observations))]
    key = [producer.sha256, *sorted(image.identity for image in images)]
    return {"resourceType": "Bundle", "type": "transaction",
            "identifier": {"system": URI, "value": derived_urn("fhir-bundle", *key)}, "entry": entries}


def _entry(resource: dict) -> dict:
    """A conditional create: the resource's derived identifier is also its fullUrl, what references name."""
    urn = resource["identifier"][0]["value"]
    return {"fullUrl": urn, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": f"identifier={URI}|{urn}"}}


def _identified(kind: str, urn: str) -> dict:
    return {"resourceType": kind, "identifier": [{"system": URI, "value": urn}]}


def _device(producer) -> dict:
    return {**_identified("Device", derived_urn("device", producer.sha256)),
            "manufacturer": "cxr-edge",
            "deviceName": [{"name": f"cxr-edge {producer.name}", "type": "model-name"}],
            "version": [{"type": {"text": "software"}, "value": f"cxr-edge {producer.version}"},
                        {"type": {"text": "bundle manifest sha256"}, "value": producer.sha256},
                        {"type": {"text": "signer fingerprint"}, "value": producer.signer}],
            "note": [{"text": f"AI pre-diagnosis software. {DISCLAIMER}"}]}


def _context(image: ImageRecord) -> dict:
    """The fields every resource of the image shares: subject, study, times."""
    context: dict = {}
    if image.patient_id:
        context["subject"] = {"type": "Patient", "identifier": {"value": image.patient_id}}
    effective = _study_instant(image.study_date, image.study_time)
    context["effectiveDateTime"] = effective or _instant(image.classified_at)
    context["issued"] = _instant(image.classified_at)
    return context


def _study_reference(image: ImageRecord) -> dict | None:
    if not image.study_uid:
        return None
    return {"type": "ImagingStudy", "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{image.study_uid}"}}


def _observations(image: ImageRecord, producer, device_urn: str) -> list[dict]:
    result = image.result
    common = {"status": "preliminary", "category": [{"coding": [IMAGING]}], **_context(image),
              "device": {"reference": device_urn}}
    study = _study_reference(image)
    if study:
        common["derivedFrom"] = [study]

    def observation(role: str, code: dict, **value) -> dict:
        urn = derived_urn("fhir-observation", role, image.identity, producer.sha256)
        return {**_identified("Observation", urn), **common, "code": code, **value}

    items = [observation("label", {"coding": [coding(FINDING)], "text": "AI pre-diagnosis label"},
                         valueCodeableConcept={"coding": [coding(LABEL_CODES[result.label])],
                                               "text": in_words(result.label)})]
    for label, p in zip(LABELS, result.probs):
        code = PROBABILITY_CODES[label]
        items.append(observation(f"p-{label}", {"coding": [coding(code)], "text": code.meaning},
                                 valueQuantity={"value": round(float(p), 6), "unit": "probability",
                                                "system": UCUM, "code": "1"}))
    referral = observation("referral", {"coding": [coding(REFERRAL)], "text": REFERRAL.meaning},
                           valueBoolean=bool(result.refer))
    if result.reasons:
        referral["note"] = [{"text": reason.words()} for reason in result.reasons]
    return [*items, referral]


def _report(image: ImageRecord, producer, observations: list[dict]) -> dict:
    result = image.result
    index = LABELS.index(result.label)
    conclusion = (f"AI pre-diagnosis: {in_words(result.label)} (probability {result.probs[index]:.2f})"
                  + ("; refer to a clinician" if result.refer else "") + f". {DISCLAIMER}")
    report = {**_identified("DiagnosticReport", derived_urn("fhir-report", image.identity, producer.sha256)),
              "status": "preliminary", "category": [{"coding": [RADIOLOGY]}],
              "code": {"coding": [coding(CHEST_XRAY_REPORT)], "text": "Chest X-ray AI pre-diagnosis"},
              **_context(image),
              "result": [{"reference": o["identifier"][0]["value"]} for o in observations],
              "conclusion": conclusion,
              "conclusionCode": [{"coding": [coding(LABEL_CODES[result.label])], "text": in_words(result.label)}]}
    study = _study_reference(image)
    if study:
        report["imagingStudy"] = [study]
    return report


def _instant(moment: datetime.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def _study_instant(date: str, time: str) -> str:
    """A FHIR dateTime from DICOM DA and TM, or "" when the date is missing or malformed (the box's clock then
    stands in). Without a time, the date alone; a time has no zone in DICOM, so the box's is used."""
    date = (date or "").strip()
    try:
        day = datetime.datetime.strptime(date, "%Y%m%d")
    except ValueError:
        return ""
    digits = (time or "").strip().split(".")[0]
    if len(digits) < 4 or not digits.isdigit():
        return day.date().isoformat()
    moment = day.replace(hour=int(digits[:2]), minute=int(digits[2:4]),
                         second=int(digits[4:6]) if len(digits) >= 6 else 0)
    try:
        return _instant(moment)
    except ValueError:
        return day.date().isoformat()
