"""The codes the DICOM and FHIR results use, each with where it comes from. Standard concepts where one exists
(SNOMED CT, DICOM's own DCM, LOINC, UCUM); cxr-edge's private scheme `99CXREDGE` (declared in every SR's Coding
Scheme Identification) for the rest. Every code keeps the label's text beside it in the objects, so a reader never
depends on a code to know the result."""

from pydicom.sr.coding import Code

PRIVATE_SCHEME = "99CXREDGE"  # "99" starts a private coding scheme designator (PS3.16 8.2); values fit SH (16)

# The label, as the value of a "Finding" qualitative evaluation.
LABEL_CODES = {
    # SNOMED CT 17621005 |Normal (qualifier value)|: DICOM CID 244 and pydicom's codes.SCT.Normal
    "normal": Code("17621005", "SCT", "Normal"),
    # DCM 112033 "Abnormal opacity": DICOM CID 6101 (Chest Finding or Feature, from the Chest CAD SR); SNOMED CT has
    # no pre-coordinated "opacity of lung" the Database's class means
    "lung_opacity": Code("112033", "DCM", "Abnormal opacity"),
    # SNOMED CT 75570004 |Viral pneumonia (disorder)| (OMOP's SNOMED tables; not used by any DICOM CID)
    "viral_pneumonia": Code("75570004", "SCT", "Viral pneumonia"),
    # SNOMED CT 840539006 |Disease caused by severe acute respiratory syndrome coronavirus 2 (disorder)|, preferred
    # term "COVID-19" (SNOMED International's COVID-19 page; HL7 SANER's COVID19DXSNOMED value set)
    "covid19": Code("840539006", "SCT", "COVID-19"),
}

FINDING = Code("121071", "DCM", "Finding")  # DICOM PS3.16, TID 1501's usual concept for a finding
REFERRAL = Code("referral", PRIVATE_SCHEME, "Refer to a clinician")
REFERRAL_REASON = Code("referral-reason", PRIVATE_SCHEME, "Reason")
NOTICE = Code("121106", "DCM", "Comment")  # DICOM PS3.16 DCM 121106
YES = Code("373066001", "SCT", "Yes")  # SNOMED CT |Yes (qualifier value)|, DICOM CID 230
NO = Code("373067005", "SCT", "No")  # SNOMED CT |No (qualifier value)|, DICOM CID 230
ALGORITHM_FAMILY = Code("123110", "DCM", "Artificial Intelligence")  # DICOM CID 7162 (Algorithm Family)
NO_UNITS = Code("1", "UCUM", "no units")  # UCUM's unity: a probability has no unit

PROBABILITY_CODES = {
    "normal": Code("p-normal", PRIVATE_SCHEME, "Probability of Normal"),
    "lung_opacity": Code("p-lung-opacity", PRIVATE_SCHEME, "Probability of Lung opacity"),
    "viral_pneumonia": Code("p-viral-pneum", PRIVATE_SCHEME, "Probability of Viral pneumonia"),
    "covid19": Code("p-covid19", PRIVATE_SCHEME, "Probability of COVID-19"),
}

# LOINC 36554-4 "XR Chest Single view": each report is about one frontal radiograph (the code IHE's RAD.IDR guide
# uses in its chest X-ray examples, build.fhir.org/ig/IHE/RAD.IDR); the SR's procedure reported and FHIR's code
CHEST_XRAY_REPORT = Code("36554-4", "LN", "XR Chest Single view")
