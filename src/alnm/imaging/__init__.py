"""Image ingestion and preparation: manifest, DICOM/NIfTI reading, DCE phases, preprocessing, ROI crops."""
