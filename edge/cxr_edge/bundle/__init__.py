"""The deployable bundle: its files and manifest, the .cxrb archive, the publisher's signature and the
known-answer self-test."""
