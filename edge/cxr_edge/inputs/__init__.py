"""Finding images on a stick and decoding them to the image contract: files, PNG/JPEG/TIFF, DICOM, levels."""
