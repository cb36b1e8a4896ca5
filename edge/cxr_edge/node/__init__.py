"""The clinic node (`cxr-edge serve`): one long-running process that receives images from the X-ray unit over
DICOM, keeps them and its results in one folder with one SQLite database, and classifies each image as it
arrives with the same Classifier as `classify`.

    config    the node's TOML file, checked key by key before anything starts
    state     the SQLite database: instances, studies, results, events (schema version, WAL)
    receiver  the DICOM listener (pynetdicom): C-ECHO, and C-STORE with the data on disk before "success"
    worker    the classifying thread, fed from the database, so receiving never waits on a model
    sticks    the USB stick watcher: each stick mounted below [usb] watch classified into data/reports/
    serve     start, run and stop them together
"""
