"""The node's state: the only place with SQL. One SQLite database in the data folder, split by who writes it:
the schema and its migrations (`schema`), the connection and transactions (`connection`), receiving
(`receiving`), classifying (`classifying`), sending (`sending`), sticks (`sticks`), the screen's accounts
(`accounts`), its reviews and pages (`reviews`), and a candidate bundle's results (`shadow`).

It keeps what a clinician needs to find a patient (patient ID and name, accession number, study date and
description), because it serves the clinic; the database and the data folder are the service user's alone
(modes 0600 and 0700). Nothing here logs.
"""

from __future__ import annotations

from cxr_edge.node.state.accounts import Accounts
from cxr_edge.node.state.classifying import Classifying
from cxr_edge.node.state.connection import DATABASE, Connection, private_folder, write_durably
from cxr_edge.node.state.receiving import Instance, Receiving, StudyHeader
from cxr_edge.node.state.reviews import WORKLIST_FILTERS, Reviews
from cxr_edge.node.state.schema import MIGRATIONS, SCHEMA_VERSION
from cxr_edge.node.state.sending import Outgoing, Queued, Sending
from cxr_edge.node.state.shadow import Shadow
from cxr_edge.node.state.sticks import Sticks

__all__ = ["DATABASE", "MIGRATIONS", "SCHEMA_VERSION", "WORKLIST_FILTERS", "Instance", "Outgoing", "Queued", "State",
           "StudyHeader", "private_folder", "write_durably"]


class State(Connection, Receiving, Classifying, Sending, Sticks, Accounts, Reviews, Shadow):
    """The database, with each owner's reads and writes."""
