"""Reports of a run: the terminal table, CSV/JSON/JSONL and the HTML worklist."""
