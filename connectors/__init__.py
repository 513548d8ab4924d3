"""I/O only: drop locations (local, SFTP, S3), report parsers, the DDEX writer."""
