"""The field technician's tool: writes a booth's configuration onto its boot partition."""
