"""DDEX ERN 4.3 delivery: message builder, validation, asset QC, packaging, ACK reading."""
