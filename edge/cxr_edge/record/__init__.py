"""Results into the patient's record: a DICOM structured report and a heatmap secondary capture in the source
image's study (`dicom`), and a FHIR R4 transaction Bundle for the EHR (`fhir`), each with identifiers derived from
the source and the bundle (`uids`), so that writing or sending again never makes a second copy."""
