"""Read models built from the event log: plain SQL tables for reporting."""
