"""Infrastructure the services use: audio storage and conversion, the on-disk spool."""
