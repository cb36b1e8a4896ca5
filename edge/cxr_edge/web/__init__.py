"""The clinician's screen: the node's web pages (worklist, study, review, status) and its small API, served by
`cxr-edge serve` itself behind a login."""
